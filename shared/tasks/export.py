"""Exports: one row per task (id, url, status, error code, flat tags, tags per dimension,
summary, duration, cost, error message, uid, platform, creation time) as JSON Lines or
CSV, written chunk by chunk as the rows are read, so an export of any size holds one
chunk in memory.

CSV is for spreadsheets: it starts with a UTF-8 BOM (Excel then reads Chinese text as
UTF-8) and a text cell beginning with `=`, `+`, `-`, `@` (or a tab / carriage return) gets
a leading `'`, so a tag cannot run as a formula (CSV injection).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from shared.redact import redact
from shared.tagging.result import ALL_DIMENSIONS
from shared.tasks.schema import video_tasks as t

EXPORT_COLUMNS = [t.c.id, t.c.task_id, t.c.url, t.c.status, t.c.error_code, t.c.tags,
                  t.c.duration_s, t.c.message, t.c.uid, t.c.platform, t.c.created_at]
"""What an export reads of each task (never the whole row)."""

EXPORT_CHUNK = 200
"""Rows per query: a chunk of parsed results is what an export holds in memory."""

ADDED_FIELDS = ["message", "uid", "platform", "created_at"]
"""Fields added in issue 33, last in a row: the earlier columns keep their places."""
CSV_FIELDS = ["task_id", "url", "status", "error_code", "tags",
              *(f"tags_{name}" for name in ALL_DIMENSIONS), "summary", "duration_s",
              "cost_usd", *ADDED_FIELDS]
LIST_SEPARATOR = "|"
"""Tags in one CSV cell."""

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"
CONTENT_TYPES = {"jsonl": "application/x-ndjson; charset=utf-8",
                 "csv": "text/csv; charset=utf-8"}


def export_record(row: dict[str, Any]) -> dict[str, Any]:
    """One task's export row (JSON shape) from the columns in EXPORT_COLUMNS."""
    result = row.get("tags") if isinstance(row.get("tags"), dict) else {}
    dimensions = result.get("dimensions") or {}
    per_dimension = {}
    for name in ALL_DIMENSIONS:
        if name in dimensions:
            seen: dict[str, None] = {}
            for tags in (dimensions[name] or {}).values():
                for tag in tags or []:
                    if isinstance(tag, dict) and tag.get("tag"):
                        seen.setdefault(tag["tag"], None)
            per_dimension[name] = list(seen)
    duration = row.get("duration_s")
    if duration is None:
        duration = (result.get("technical") or {}).get("duration_s")
    record: dict[str, Any] = {}
    if "item_index" in row:
        record["index"] = row["item_index"]
    record.update({
        "task_id": row["task_id"], "url": row["url"], "status": row["status"],
        "error_code": row.get("error_code"), "tags": list(result.get("tags") or []),
        "dimensions": per_dimension, "summary": result.get("summary") or "",
        "duration_s": duration, "cost_usd": (result.get("usage") or {}).get("cost_usd"),
        "message": redact(row["message"]) if row.get("message") else None,
        "uid": row.get("uid"), "platform": row.get("platform"),
        "created_at": utc_text(row.get("created_at")),
    })
    return record


def utc_text(value: datetime | None) -> str | None:
    """A stored (naive UTC) time as the API writes times: ISO 8601 ending in `Z`."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def csv_cell(value: Any) -> Any:
    """A cell that a spreadsheet shows as text, never evaluates."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_row(record: dict[str, Any]) -> list[Any]:
    cells = [record["task_id"], record["url"], record["status"], record["error_code"] or "",
             LIST_SEPARATOR.join(record["tags"]),
             *(LIST_SEPARATOR.join(record["dimensions"].get(name, []))
               for name in ALL_DIMENSIONS),
             record["summary"], "" if record["duration_s"] is None else record["duration_s"],
             "" if record["cost_usd"] is None else record["cost_usd"],
             *(record.get(name) or "" for name in ADDED_FIELDS)]
    if "index" in record:
        cells.insert(0, record["index"])
    return [csv_cell(cell) for cell in cells]


def export_stream(kind: str, chunks: Iterable[list[dict[str, Any]]], *,
                  with_index: bool = False) -> Iterator[bytes]:
    """The export as bytes, one piece per chunk of rows."""
    if kind == "csv":
        header = io.StringIO()
        csv.writer(header).writerow((["index"] if with_index else []) + CSV_FIELDS)
        yield (BOM + header.getvalue()).encode()
    for rows in chunks:
        if kind == "csv":
            out = io.StringIO()
            writer = csv.writer(out)
            for row in rows:
                writer.writerow(csv_row(export_record(row)))
            yield out.getvalue().encode()
        else:
            yield "".join(json.dumps(export_record(row), ensure_ascii=False) + "\n"
                          for row in rows).encode()
