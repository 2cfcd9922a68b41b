"""The write path: the batch writer (``writer.BatchWriter``) and its parts, from an item checked
into a record to one batch's transaction; ``--bulk``'s staging; the merge rule and the identifier
conflict policy; ``rejected_items``."""
