"""Teams' scoped API keys (issue 36).

    vtt-keys create --team T --scopes submit,read [--name LABEL]
    vtt-keys list [--team T]
    vtt-keys revoke KEY_ID

`create` prints the key once, alone on stdout (what it is goes to stderr): the store keeps
only HMAC-SHA256(API_KEY_PEPPER, secret), so a lost key is revoked and replaced, never
shown again. Scopes: submit, read, admin (admin has them all). A revoked key is refused
(401) by every function on its next request.
Exit codes: 0 done, 2 bad arguments (team, scopes, name, no API_KEY_PEPPER), 4 no such key.
"""

from __future__ import annotations

import argparse
import sys

from scripts.import_accounts import redis_client
from shared.config import get_settings
from shared.errors import InvalidInput, NotConfigured, NotFound
from shared.teams.keys import KeyRecord, KeyStore, key_id_of, parse_scopes

COLUMNS = ("key_id", "team", "scopes", "name", "created_at", "last_used_at", "revoked_at")


def store() -> KeyStore:
    return KeyStore(redis_client(), get_settings().API_KEY_PEPPER)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="a new key for a team, printed once")
    create.add_argument("--team", required=True, help="the team's name (a-z, 0-9, - and _)")
    create.add_argument("--scopes", required=True, help="comma-separated: submit,read,admin")
    create.add_argument("--name", default="", help="a label: who or what uses the key")
    listing = commands.add_parser("list", help="every key (never a secret)")
    listing.add_argument("--team", help="only this team's keys")
    revoke = commands.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("key_id", help="the key's id (as `list` shows it)")
    args = parser.parse_args(argv)
    try:
        if args.command == "create":
            return create_key(args.team, args.scopes, args.name)
        if args.command == "list":
            print(format_table(store().list(args.team)))
            return 0
        return revoke_key(args.key_id)
    except (InvalidInput, NotConfigured) as error:
        print(f"refused: {error.message}", file=sys.stderr)
        return 2
    except NotFound as error:
        print(error.message, file=sys.stderr)
        return 4


def create_key(team: str, scopes: str, name: str) -> int:
    key = store().create(team, parse_scopes(scopes), name)
    print(f"key {key_id_of(key)} for team {team} ({scopes}); it is shown this once:",
          file=sys.stderr)
    print(key)
    return 0


def revoke_key(given: str) -> int:
    key_id = key_id_of(given)
    if key_id is None:
        raise InvalidInput("key_id: 12 lowercase hex characters (as `vtt-keys list` shows)")
    record = store().revoke(key_id)
    print(f"{key_id}: revoked at {record.revoked_at} (team {record.team})")
    return 0


def format_table(records: list[KeyRecord]) -> str:
    rows = [COLUMNS, *((r.key_id, r.team, ",".join(r.scopes), r.name, r.created_at,
                        r.last_used_at or "-", r.revoked_at or "-") for r in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)
                               ).rstrip() for row in rows)


if __name__ == "__main__":
    sys.exit(main())
