"""Is a Gemini key usable? One free call answers it: `models.get` of the configured model
(GET /v1beta/models/{model}) costs no generateContent quota, yet Google checks the key,
its project's standing and the caller's region on it. Used by the importer (`--check`)
and by the health probes of disabled keys (shared/accounts/probes.py).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from google import genai
from google.genai import errors, types

from shared.redact import redact

VALID, INVALID, SUSPENDED, REGION_REFUSED, UNREACHABLE = (
    "valid", "invalid", "suspended", "region-refused", "unreachable")
VERDICTS = (VALID, INVALID, SUSPENDED, REGION_REFUSED, UNREACHABLE)


@dataclass(frozen=True)
class KeyCheck:
    verdict: str
    detail: str = ""
    """Redacted: Google's messages can quote the key."""

    @property
    def usable(self) -> bool:
        return self.verdict == VALID

    @property
    def disabled_reason(self) -> str:
        """What a key disabled for this verdict is marked with: the tagger's own wording
        (`API_KEY_INVALID`, `HTTP 403 …`), so the probes treat both alike."""
        if self.verdict == INVALID:
            return "API_KEY_INVALID" if "API_KEY_INVALID" in self.detail else self.detail
        if self.verdict == REGION_REFUSED:
            return f"region refused: {self.detail}"
        if self.verdict == UNREACHABLE:
            return f"unreachable: {self.detail}"
        return self.detail


class KeyChecker:
    """One client per endpoint; the key goes in each call's headers (never in a URL)."""

    def __init__(self, model: str, base_url: str = "", timeout_s: float = 10.0) -> None:
        self.model = model
        self.timeout_ms = max(1, int(timeout_s * 1000))
        self.client = genai.Client(api_key="chosen-per-call", http_options=types.HttpOptions(
            base_url=base_url or None, timeout=self.timeout_ms))

    def check(self, api_key: str) -> KeyCheck:
        options = types.HttpOptions(headers={"x-goog-api-key": api_key},
                                    timeout=self.timeout_ms)
        try:
            self.client.models.get(model=self.model,
                                   config=types.GetModelConfig(http_options=options))
        except errors.APIError as error:
            return verdict_of(error)
        except Exception as error:  # noqa: BLE001 - timeouts and connection errors of httpx
            return KeyCheck(UNREACHABLE, _transport(error))
        return KeyCheck(VALID)


def verdict_of(error: errors.APIError) -> KeyCheck:
    """What Google's answer says about the key (its documented error bodies)."""
    status = f"HTTP {error.code} {error.status or ''}".strip()
    body = error.details if isinstance(error.details, dict) else {}
    inner = body.get("error", body) if isinstance(body, dict) else {}
    details = inner.get("details") if isinstance(inner, dict) else None
    reasons = [d.get("reason") for d in details or [] if isinstance(d, dict) and d.get("reason")]
    message = redact(error.message or "")[:200]
    if error.code == 429:  # the key answered: only its quota is spent for now
        return KeyCheck(VALID, f"{status}: rate limited, the key itself is fine")
    if "API_KEY_INVALID" in reasons or error.code == 401:
        return KeyCheck(INVALID, f"{status} ({reasons[0]})" if reasons else status)
    if error.code == 400 and "location is not supported" in message.lower():
        return KeyCheck(REGION_REFUSED, f"{status}: user location is not supported")
    if error.code == 403:
        return KeyCheck(SUSPENDED, f"{status} ({reasons[0]})" if reasons
                        else f"{status}: {message or 'no message'}")
    return KeyCheck(UNREACHABLE, f"{status}: {message or 'no message'}")


def _transport(error: BaseException) -> str:
    """A short name for why no answer came (timeout, refused, DNS), never a URL."""
    seen: BaseException | None = error
    for _ in range(6):
        if seen is None:
            break
        name = type(seen).__name__
        if "Timeout" in name or isinstance(seen, TimeoutError | socket.timeout):
            return "timed out"
        if name == "ConnectError" or isinstance(seen, ConnectionError | socket.gaierror):
            return "could not connect"
        seen = seen.__cause__ or seen.__context__
    return type(error).__name__
