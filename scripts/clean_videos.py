"""Delete cached videos by day (GCS or local, whichever STORAGE says).

    python scripts/clean_videos.py                         # older than CACHE_DAYS days
    python scripts/clean_videos.py --days 3 --dry-run
    python scripts/clean_videos.py --start 2026-01-01 --end 2026-01-31

`--start` and `--end` are inclusive and go together. Exit code 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date

from scripts.cli_args import day
from shared.app.cleanup import clean_videos, default_range, human_bytes
from shared.config import get_settings
from shared.services import build_storage


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=day, help="first day to delete (YYYY-MM-DD)")
    parser.add_argument("--end", type=day, help="last day to delete (YYYY-MM-DD)")
    parser.add_argument("--days", type=int, default=settings.housekeeping.CACHE_DAYS,
                        help="without --start/--end: delete what is older than this many days")
    parser.add_argument("--dry-run", action="store_true", help="list, do not delete")
    args = parser.parse_args(argv)
    if (args.start is None) != (args.end is None):
        parser.error("--start and --end go together (both days inclusive)")
    if args.start and args.start > args.end:
        parser.error(f"--start {args.start} is after --end {args.end}")
    if args.days < 0:
        parser.error("--days must be 0 or more")
    start, end = (args.start, args.end) if args.start else default_range(date.today(), args.days)
    report = clean_videos(build_storage(settings.storage), start, end, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for when, count in sorted(report.days.items()):
        print(f"{when}: {count} objects")
    print(f"{verb} {report.objects} objects, {human_bytes(report.bytes_freed)} "
          f"({report.bytes_freed} bytes) from {start} to {end}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
