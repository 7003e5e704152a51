"""Teams' scoped API keys (issue 36).

    vtt-keys create --team T --scopes submit,read [--name LABEL]
    vtt-keys list [--team T]
    vtt-keys revoke KEY_ID
    vtt-keys caps --team T [--max-per-day N|none] [--max-in-flight N|none] [--weight W]

`create` prints the key once, alone on stdout (what it is goes to stderr): the store keeps
only HMAC-SHA256(API_KEY_PEPPER, secret), so a lost key is revoked and replaced, never
shown again. Scopes: submit, read, admin (admin has them all). A revoked key is refused
(401) by every function on its next request. `caps` shows a team's caps, or sets the ones
given (`none`: no cap); over a cap, creates are 429 with Retry-After naming it. `--weight`
is the team's share of the key pool when teams compete for it (default 1; 3 = three times
a weight-1 team's share).
Exit codes: 0 done, 2 bad arguments (team, scopes, name, no API_KEY_PEPPER), 4 no such key.
"""

from __future__ import annotations

import argparse
import sys

from scripts.import_accounts import redis_client
from shared.config import get_settings
from shared.errors import InvalidInput, NotConfigured, NotFound
from shared.teams.caps import CAP_NAMES, CapStore, TeamCaps, check_weight
from shared.teams.keys import KeyRecord, KeyStore, check_team, key_id_of, parse_scopes

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
    caps = commands.add_parser("caps", help="a team's caps (tasks per UTC day, in flight) "
                                            "and weight (its share of the pool)")
    caps.add_argument("--team", required=True)
    caps.add_argument("--max-per-day", type=cap_value, default=UNSET,
                      help="a whole number ≥ 1, or none")
    caps.add_argument("--max-in-flight", type=cap_value, default=UNSET,
                      help="a whole number ≥ 1, or none")
    caps.add_argument("--weight", type=weight_value, default=UNSET,
                      help="a number > 0: the team's share of the pool (default 1)")
    args = parser.parse_args(argv)
    try:
        if args.command == "caps":
            return team_caps(args.team, args.max_per_day, args.max_in_flight, args.weight)
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


UNSET = object()


def cap_value(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number ≥ 1, or none") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: a cap is at least 1 (none: no cap; to "
                                         "stop a team, revoke its keys)")
    return value


def weight_value(text: str) -> float:
    try:
        return check_weight(text)
    except InvalidInput as error:
        raise argparse.ArgumentTypeError(error.message) from None


def team_caps(team: str, max_per_day: object, max_in_flight: object,
              weight: object = UNSET) -> int:
    caps = CapStore(redis_client())
    check_team(team)
    current = caps.get(team)
    if any(value is not UNSET for value in (max_per_day, max_in_flight, weight)):
        current = TeamCaps(
            max_per_day=current.max_per_day if max_per_day is UNSET else max_per_day,
            max_in_flight=current.max_in_flight if max_in_flight is UNSET else max_in_flight,
            weight=current.weight if weight is UNSET else weight)
        caps.set(team, current)
    shown = ", ".join(f"{name} {getattr(current, name) or 'none'}" for name in CAP_NAMES)
    print(f"team {team}: {shown}, weight {current.weight:g}")
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
