"""Delete cached videos (and their frames) by the day in their key: same code for GCS and
the local folder. Keys look like `videos/YYYY/MM/DD/{task_id}/…`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from shared.storage import Storage

_DAY = re.compile(r"^videos/(\d{4})/(\d{2})/(\d{2})/")
EARLIEST = date(2000, 1, 1)


@dataclass
class CleanupReport:
    start: date
    end: date
    dry_run: bool
    objects: int = 0
    bytes_freed: int = 0
    days: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "start": self.start.isoformat(), "end": self.end.isoformat(),
            "dry_run": self.dry_run, "objects": self.objects,
            "bytes_freed": self.bytes_freed, "freed": human_bytes(self.bytes_freed),
            "days": self.days,
        }


def default_range(today: date, cache_days: int) -> tuple[date, date]:
    """Everything older than `cache_days` days: today and the last `cache_days` days stay."""
    return EARLIEST, today - timedelta(days=cache_days + 1)


def day_of(key: str) -> date | None:
    match = _DAY.match(key)
    if not match:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def clean_videos(storage: Storage, start: date, end: date, *, dry_run: bool = False
                 ) -> CleanupReport:
    """Delete every object whose key day lies in [start, end] (both inclusive)."""
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    report = CleanupReport(start, end, dry_run)
    doomed = []
    for obj in storage.list("videos/"):
        day = day_of(obj.key)
        if day is None or not (start <= day <= end):
            continue
        doomed.append(obj)
        report.objects += 1
        report.bytes_freed += obj.size_bytes
        report.days[day.isoformat()] = report.days.get(day.isoformat(), 0) + 1
    if not dry_run:
        for obj in doomed:
            storage.delete(obj.key)
    return report


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1024 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"
