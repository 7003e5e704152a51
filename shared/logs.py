"""Logging: readable single lines, or one JSON object per line for Cloud Logging.

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
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime

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
