"""Logging: readable single lines, or one JSON object per line for Cloud Logging; the
local stack's log files (`var/logs/*.log`), rotated by size.

Context travels with the request or task: `with log_context(task_id=…)` adds its fields
to every line logged inside, and a request's `X-Cloud-Trace-Context` becomes Cloud
Logging's trace fields so one task's lines group under its request. Pass per-line fields
as `extra={"stage": …, "duration_ms": …}`. API keys never belong in a log line: log
`key_id` instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from shared.redact import redact

CONTEXT_FIELDS = ("task_id", "stage", "duration_ms", "attempt", "key_id", "error_code",
                  "batch_id")
TRACE = "logging.googleapis.com/trace"
SPAN = "logging.googleapis.com/spanId"

_context: ContextVar[tuple[tuple[str, object], ...]] = ContextVar("log_context", default=())


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    merged = {**dict(_context.get()), **{k: v for k, v in fields.items() if v}}
    token = _context.set(tuple(merged.items()))
    try:
        yield
    finally:
        _context.reset(token)


def trace_fields(header: str | None) -> dict[str, str]:
    """`X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1` → Cloud Logging's trace fields."""
    match = re.match(r"^([0-9a-fA-F]{32})(?:/(\d+))?", header or "")
    if not match:
        return {}
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCP_PROJECT")
    trace = f"projects/{project}/traces/{match[1]}" if project else match[1]
    return {TRACE: trace, **({SPAN: match[2]} if match[2] else {})}


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields = dict(_context.get())
    fields.update({k: getattr(record, k) for k in CONTEXT_FIELDS if hasattr(record, k)})
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in _fields(record).items() if k not in (TRACE, SPAN)}
        context = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if context:
            line += f" [{context}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


LOG_FILE_MAX_MB = 10.0
"""Size at which a local stack's log file is rotated (LOG_FILE_MAX_MB): big enough for
days of an idle stack, small enough to open in an editor."""

LOG_FILE_BACKUPS = 3
"""Rotated files kept per log (LOG_FILE_BACKUPS): `api.log.1` (newest) … `api.log.3`;
with the live file at most four times LOG_FILE_MAX_MB per process."""


class RotatingFile:
    """An append-only log file rotated by size: a write that would take it past
    `max_bytes` first moves it to `NAME.1` (older copies move up one, the one past
    `backups` is dropped; with none kept it is simply started over) and opens a new
    `NAME`. Callers write whole lines, so a line never straddles two files; one longer
    than `max_bytes` gets a file of its own. Unbuffered (the file shows each line at once)
    and thread-safe."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self._lock = threading.Lock()
        self._file = self._open()

    def _open(self) -> BinaryIO:
        return open(self.path, "ab", buffering=0)

    def write(self, data: bytes) -> None:
        """Append `data`; after `close` it is dropped (a late line of a child whose stop
        was not waited for)."""
        with self._lock:
            if self._file.closed:
                return
            size = os.fstat(self._file.fileno()).st_size
            if size and size + len(data) > self.max_bytes:
                self._rotate()
            self._file.write(data)

    def _rotate(self) -> None:
        self._file.close()
        for index in range(self.backups - 1, 0, -1):
            older = self.backup(index)
            if older.exists():
                older.replace(self.backup(index + 1))
        if self.backups:
            self.path.replace(self.backup(1))
        else:
            self.path.unlink(missing_ok=True)
        self._file = self._open()

    def backup(self, index: int) -> Path:
        """`NAME.index`: 1 is the newest rotated copy."""
        return self.path.with_name(f"{self.path.name}.{index}")

    def close(self) -> None:
        with self._lock:
            self._file.close()
