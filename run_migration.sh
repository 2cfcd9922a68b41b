#!/usr/bin/env bash
# Run one migration file: ./run_migration.sh 002_add_isrc_unique_constraints
# Same runner as `python scripts/migrate.py` (advisory lock, one transaction per file) and the
# same database: DATABASE_URL, else the embedded server. Exit 0 applied or skipped, 1 the
# migration failed and was rolled back, 2 usage error or no database.
set -euo pipefail
if [[ $# -ne 1 ]]; then
    echo "usage: $0 MIGRATION_NAME   (e.g. 002_add_isrc_unique_constraints)" >&2
    exit 2
fi
cd "$(dirname "$0")"
# -m from the checkout's root: the project is importable whether or not it is pip-installed.
exec "${PYTHON:-python3}" -m scripts.migrate apply "$1"
