"""What Gemini says about itself rather than about a key: a model that is overloaded, an
endpoint (relay, proxy) whose exit region Gemini refuses or that does not answer.

Both are shared by every worker through Redis: the first worker that sees the condition
starts an exponential back-off with jitter; while it lasts nobody sends to that model or
endpoint; when it ends, exactly one worker probes (a SET NX gate) and its first success
clears the condition for all. No key is penalised for any of it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis

from shared import redis_keys
from shared.backoff import exponential_backoff

MODEL_BACKOFF_S = (5.0, 300.0)
"""First and longest back-off of an overloaded model (doubling in between)."""

ENDPOINT_BACKOFF_S = (30.0, 1800.0)
"""First and longest back-off of an endpoint that is refused or unreachable."""

PROBE_S = 60.0
"""How long the one probing request holds the gate (it is released when it reports)."""

JITTER = 0.2
"""Back-offs are spread by ±20% so workers do not come back in step."""

REGION_ADVICE = ("Gemini refuses requests from this endpoint's region (400 FAILED_PRECONDITION "
                 "'User location is not supported'): route through an endpoint in a supported "
                 "region (GEMINI_BASE_URL takes a list) — tasks wait meanwhile, none fails")
UNREACHABLE_ADVICE = "the endpoint does not answer: check GEMINI_BASE_URL and the network"


def endpoint_id(url: str) -> str:
    """Redis name part for an endpoint: a hash (a relay URL can carry a token)."""
    return hashlib.sha256((url or "google").encode()).hexdigest()[:12]


def shown(url: str) -> str:
    """The endpoint as operators see it: scheme and host only."""
    if not url:
        return "https://generativelanguage.googleapis.com (default)"
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


@dataclass(frozen=True)
class Gate:
    """May a request go now? `wait_s` when not."""

    open: bool
    wait_s: float = 0.0
    probing: bool = False


class GeminiHealth:
    def __init__(self, client: redis.Redis, clock=time.time,
                 model_backoff_s: tuple[float, float] = MODEL_BACKOFF_S,
                 endpoint_backoff_s: tuple[float, float] = ENDPOINT_BACKOFF_S) -> None:
        self.redis = client
        self.clock = clock
        self.model_backoff_s = model_backoff_s
        self.endpoint_backoff_s = endpoint_backoff_s

    # --- models ------------------------------------------------------------------------

    def model_gate(self, model: str) -> Gate:
        return self._gate(redis_keys.gemini_model(model), redis_keys.gemini_probe(model))

    def model_overloaded(self, model: str) -> float:
        """Note an overload answer; returns the back-off now in force (s)."""
        return self._fail(redis_keys.gemini_model(model), redis_keys.gemini_probe(model),
                          self.model_backoff_s,
                          {"model": model, "reason": "overloaded"})

    def model_ok(self, model: str) -> None:
        self.redis.delete(redis_keys.gemini_model(model), redis_keys.gemini_probe(model))

    # --- endpoints ---------------------------------------------------------------------

    def endpoint_gate(self, url: str) -> Gate:
        ident = endpoint_id(url)
        return self._gate(redis_keys.gemini_endpoint(ident),
                          redis_keys.gemini_endpoint_probe(ident))

    def endpoint_failed(self, url: str, reason: str) -> float:
        """`reason`: region | unreachable."""
        ident = endpoint_id(url)
        self.redis.sadd(redis_keys.GEMINI_ENDPOINTS, ident)
        return self._fail(redis_keys.gemini_endpoint(ident),
                          redis_keys.gemini_endpoint_probe(ident),
                          self.endpoint_backoff_s, {"endpoint": shown(url), "reason": reason})

    def endpoint_ok(self, url: str) -> None:
        ident = endpoint_id(url)
        self.redis.delete(redis_keys.gemini_endpoint(ident),
                          redis_keys.gemini_endpoint_probe(ident))

    # --- what operators see --------------------------------------------------------------

    def status(self, models: list[str], endpoints: list[str]) -> dict[str, object]:
        """Per model and endpoint: ok, or what is wrong, since when, and what to do."""
        now = self.clock()
        report: dict[str, object] = {"models": {}, "endpoints": []}
        for model in models:
            state = self.redis.hgetall(redis_keys.gemini_model(model))
            report["models"][model] = _describe(state, now, "the model is overloaded "
                                                "(503 UNAVAILABLE / 504): tasks wait")
        for url in endpoints:
            state = self.redis.hgetall(redis_keys.gemini_endpoint(endpoint_id(url)))
            advice = REGION_ADVICE if state.get("reason") == "region" else UNREACHABLE_ADVICE
            report["endpoints"].append({"endpoint": shown(url),
                                        **_describe(state, now, advice)})
        return report

    # --- the shared mechanism ------------------------------------------------------------

    def _gate(self, state_key: str, probe_key: str) -> Gate:
        until = float(self.redis.hget(state_key, "until") or 0)
        now = self.clock()
        if not until:
            return Gate(True)
        if now < until:
            return Gate(False, until - now)
        # the back-off is over: one worker probes, the others wait for its answer
        if self.redis.set(probe_key, "1", nx=True, px=int(PROBE_S * 1000)):
            return Gate(True, probing=True)
        return Gate(False, min(5.0, max(0.2, (self.redis.pttl(probe_key) or 0) / 1000)))

    def _fail(self, state_key: str, probe_key: str, bounds: tuple[float, float],
              fields: dict[str, str]) -> float:
        level = int(self.redis.hincrby(state_key, "level", 1))
        backoff = exponential_backoff(level - 1, *bounds, spread=(1 - JITTER, 1 + JITTER))
        now = self.clock()
        pipe = self.redis.pipeline(transaction=True)
        pipe.hsetnx(state_key, "since", now)
        pipe.hset(state_key, mapping={**fields, "until": now + backoff})
        pipe.expire(state_key, int(bounds[1] * 4) + 1)
        pipe.delete(probe_key)
        pipe.execute()
        return backoff


def _describe(state: dict[str, str], now: float, advice: str) -> dict[str, object]:
    if not state:
        return {"status": "ok"}
    until = float(state.get("until") or 0)
    return {"status": state.get("reason", "failing"), "since": float(state.get("since") or now),
            "backing_off_s": round(max(0.0, until - now), 1), "advice": advice}
