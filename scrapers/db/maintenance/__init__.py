"""Tools of migration 002: the uniqueness verification (``verify_isrc_uniqueness.py``) and the
undoing of single merges from its audit trail (``restore_duplicates.py``)."""
