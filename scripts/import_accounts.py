"""Import Gemini accounts into the key pool.

    python scripts/import_accounts.py --file google_accounts.json [--replace] [--dry-run]

The file is a JSON list of {api_key, daily_limit, minute_limit, username, password, phone,
email}. Exit codes: 0 imported, 2 bad arguments or file, 3 another import is running.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.accounts.importer import (  # noqa: E402
    ImportRefused,
    format_table,
    import_accounts,
    load_accounts,
)
from shared.config import VAR_DIR, get_settings  # noqa: E402
from shared.redis_conn import connect  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, required=True)
    parser.add_argument("--replace", action="store_true",
                        help="remove keys that are not in the file")
    parser.add_argument("--dry-run", action="store_true", help="validate and show, write nothing")
    args = parser.parse_args(argv)
    try:
        entries = load_accounts(args.file)
    except ImportRefused as error:
        print(f"import refused: {error}", file=sys.stderr)
        return 2
    client = connect(get_settings().REDIS_URL, VAR_DIR / "redis")
    try:
        rows = import_accounts(client, entries, replace=args.replace, dry_run=args.dry_run)
    except ImportRefused as error:
        print(f"import refused: {error}", file=sys.stderr)
        return 3
    print(format_table(rows))
    if args.dry_run:
        print("dry run: nothing was written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
