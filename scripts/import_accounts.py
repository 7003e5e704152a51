"""Import Gemini accounts into the key pool.

    python scripts/import_accounts.py --file google_accounts.json [--replace] [--dry-run]
                                      [--check [--keep-invalid]]
    python scripts/import_accounts.py --enable KEY_ID | --disable KEY_ID

The file is a JSON list of {api_key} objects, optionally with daily_limit (default 250),
minute_limit (default 10), tpm_limit, username, password, phone, email, project (the key's
Google Cloud project: its keys share the project's quotas) and limits (per other model:
{"gemini-2.0-flash": {"minute_limit": 15}}); any other field refuses the file. `--check`
asks Gemini about each key first (one free `models.get`) and imports the valid ones
(`--keep-invalid`: all, the others disabled with the reason).
Exit codes: 0 done, 2 bad arguments or file (or a malformed key id), 3 another
import is running, 4 no such key, 5 `--check` passed no key (nothing was written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import redis

from shared.accounts.checks import UNREACHABLE, KeyCheck, KeyChecker
from shared.accounts.importer import (
    ImportRefused,
    check_keys,
    format_table,
    import_accounts,
    load_accounts,
)
from shared.accounts.pool import KEY_ID_PATTERN, AccountPool
from shared.config import VAR_DIR, get_settings
from shared.redis_conn import connect
from shared.services import redis_limits


def redis_client() -> redis.Redis:
    """The configured Redis, with the time limits of REDIS_*_TIMEOUT_S."""
    settings = get_settings()
    return connect(settings.redis.REDIS_URL, VAR_DIR / "redis", redis_limits(settings.redis))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--file", type=Path, help="the JSON list of keys to import")
    action.add_argument("--enable", metavar="KEY_ID",
                        help="bring a key back (the key_id /api/v1/accounts shows)")
    action.add_argument("--disable", metavar="KEY_ID", help="take a key out of the pool")
    parser.add_argument("--replace", action="store_true",
                        help="remove keys that are not in the file")
    parser.add_argument("--dry-run", action="store_true", help="validate and show, write nothing")
    parser.add_argument("--check", action="store_true",
                        help="check every key with one free Gemini call (models.get of "
                             "GEMINI_MODEL) and import the valid ones")
    parser.add_argument("--keep-invalid", action="store_true",
                        help="with --check: import the bad keys too, disabled with the reason")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.enable or args.disable:
        return set_enabled(args.enable or args.disable, bool(args.enable))
    if args.keep_invalid and not args.check:
        parser.error("--keep-invalid needs --check")
    warnings: list[str] = []
    settings = get_settings()
    tagging = settings.tagging
    try:
        entries = load_accounts(args.file, warnings,
                                [tagging.GEMINI_MODEL, *tagging.GEMINI_FALLBACK_MODELS])
    except ImportRefused as error:
        print(f"import refused: {error}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    checks = None
    if args.check:
        endpoints = tagging.gemini_endpoints
        checker = KeyChecker(tagging.GEMINI_MODEL, endpoints[0] if endpoints else "",
                             settings.pool.POOL_PROBE_TIMEOUT_S)
        checks = check_keys(entries, checker)
    client = redis_client()
    # no key passed: write nothing (with --replace the import would empty the pool)
    nothing_passed = checks is not None and not args.keep_invalid and not any(
        check.usable for check in checks.values())
    try:
        rows = import_accounts(client, entries, replace=args.replace and not nothing_passed,
                               dry_run=args.dry_run or nothing_passed, checks=checks,
                               keep_invalid=args.keep_invalid,
                               main_model=tagging.GEMINI_MODEL)
    except ImportRefused as error:
        print(f"import refused: {error}", file=sys.stderr)
        return 3
    print(format_table(rows))
    if nothing_passed:
        print(f"import refused: {none_passed(list((checks or {}).values()))}; nothing was written",
              file=sys.stderr)
        return 5
    if args.dry_run:
        print("dry run: nothing was written")
    return 0


def none_passed(checks: list[KeyCheck]) -> str:
    """Why --check left no key: every key unreachable points at the way to Gemini, not at
    the keys."""
    if all(check.verdict == UNREACHABLE for check in checks):
        return ("Gemini could not be reached for any key (GEMINI_BASE_URL, the network, "
                "POOL_PROBE_TIMEOUT_S?)")
    return "no key passed the check"


def set_enabled(key_id: str, enabled: bool) -> int:
    """Exit codes: 0 done, 2 malformed id, 4 no such key."""
    if not KEY_ID_PATTERN.match(key_id):
        print(f"{key_id[:40]!r}: malformed key id (16 lowercase hex characters)",
              file=sys.stderr)
        return 2
    pool = AccountPool(redis_client(), model=get_settings().GEMINI_MODEL)
    if not pool.set_enabled(key_id, enabled):
        print(f"{key_id}: no such key in the pool", file=sys.stderr)
        return 4
    print(f"{key_id}: {'enabled' if enabled else 'disabled'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
