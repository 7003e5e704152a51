"""Mask secrets in text that came from somewhere else.

Upstream services quote what they were sent: Google answers a suspended key with
"Consumer 'api_key:AIza…' has been suspended", an HTTP library error can carry a URL with
`?key=…`, a proxy can echo an Authorization header. Every upstream message is passed
through `redact` before it is logged, stored (Redis, database) or returned, and the log
formatters apply it to every line as a last line of defence.
"""

from __future__ import annotations

import re

_GOOGLE_KEY = re.compile(r"AIza[0-9A-Za-z_\-]{20,}")
"""Google API keys: `AIza` + 35 characters (matched from 20, to catch cut-off ones too)."""

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(vtt_[0-9a-f]{12}_)[A-Za-z0-9_-]+"), r"\1…"),
    (re.compile(r"(?i)(api_key:)[^\s'\",;)]+"), r"\1…"),
    (re.compile(r"(?i)([?&](?:key|api_key|apikey|access_token|token)=)[^&\s'\"]+"), r"\1…"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/\-]+=*"), r"\1…"),
    (re.compile(r"(?i)(x-goog-api-key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), r"\1…"),
]


def mask_key(api_key: str) -> str:
    """`AIza…x7Qk`: enough to recognise a key, useless to use it."""
    return f"{api_key[:4]}…{api_key[-4:]}" if len(api_key) > 8 else "…"


def redact(text: str | None) -> str:
    """`text` with every key-shaped secret masked (None becomes "")."""
    if not text:
        return ""
    text = _GOOGLE_KEY.sub(lambda match: mask_key(match.group(0)), text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
