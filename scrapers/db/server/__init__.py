"""The database server and its schema: connecting (URL checks, password redaction, liveness
timeouts), the embedded server, and the migration runner with ``require_current_schema``."""
