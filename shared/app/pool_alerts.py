"""Pool alerts: a signed POST to POOL_ALERT_URL when the key pool's state changes.

Conditions (each told once when it starts, again at most every POOL_ALERT_REPEAT_S while
it lasts, and `recovered` when it ends):
- `pool_unusable`: every key is disabled, cooling down or out of its daily quota;
- `low_minute` / `low_today`: the requests the usable keys can serve per minute, or what
  is left today, is below POOL_ALERT_BELOW of what all the pool's keys could;
- `key_disabled:{key_id}`: a key is disabled (with its reason — never the key).

Sent from the periodic jobs (the consumer locally, the `cleanup` function on Google
Cloud), never from a request: a slow or failing receiver cannot slow tagging. A delivery
that fails (after CALLBACK-style retries) is sent again by the next run. The URL is held
to the callbacks' rules: a private address or a redirect is refused.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

from shared import redis_keys
from shared.app.context import Services
from shared.pipeline.callbacks import post_signed
from shared.redact import redact

log = logging.getLogger("vision_to_tag.alerts")

ALERT_ATTEMPTS = 3
"""Tries of one delivery within a run (5xx, timeouts); the next run tries again."""

ALERT_LOCK_S = 120


def conditions(stats: dict, capacity: dict[str, int], below: float) -> dict[str, dict]:
    """condition → what to say about it, for the conditions true now."""
    found: dict[str, dict] = {}
    if not stats["totals"]["keys"]:
        return found
    if capacity["usable_keys"] == 0:
        found["pool_unusable"] = {"message": "no key of the pool can take a request"}
    else:
        for name, part, whole, what in (
                ("low_minute", capacity["minute"], capacity["all_minute"],
                 "requests per minute the usable keys can serve"),
                ("low_today", capacity["today"], capacity["all_today"],
                 "requests left today")):
            if whole and part / whole < below:
                found[name] = {"message": f"{what}: {part} of {whole} "
                                          f"({part / whole:.0%}, below {below:.0%})",
                               "fraction": round(part / whole, 4)}
    for entry in stats["accounts"]:
        if entry["status"] == "disabled":
            found[f"key_disabled:{entry['key_id']}"] = {
                "message": f"key {entry['key_id']} disabled",
                "key_id": entry["key_id"],
                "reason": redact(str(entry.get("disabled_reason") or ""))[:300]}
    return found


def run_alerts(services: Services, stats: dict, capacity: dict[str, int]) -> dict[str, object]:
    """Compare the pool with what was last told and send what changed."""
    settings = services.settings
    if not settings.pool.POOL_ALERT_URL:
        return {"configured": False}
    client = services.pool.redis
    lock = client.lock(redis_keys.POOL_ALERT_LOCK, timeout=ALERT_LOCK_S, blocking=False)
    if not lock.acquire():
        return {"configured": True, "skipped": "another process is sending alerts"}
    try:
        now = time.time()
        current = conditions(stats, capacity, settings.pool.POOL_ALERT_BELOW)
        told = {name: json.loads(value) for name, value in
                client.hgetall(redis_keys.POOL_ALERT_STATE).items()}
        sent, failed = [], []
        for name, info in current.items():
            state = told.get(name)
            if state is not None and state.get("cleared"):  # back before its recovery went
                state["cleared"] = False
            due = (state is None or not state["delivered"]
                   or now - state["sent_at"] >= settings.pool.POOL_ALERT_REPEAT_S)
            if not due:
                client.hset(redis_keys.POOL_ALERT_STATE, name, json.dumps(state))
                continue
            repeat = state is not None and state["delivered"]
            ok = _send(services, name, "alert", info, capacity, stats, repeat)
            (sent if ok else failed).append(name)
            since = state["since"] if state else now
            client.hset(redis_keys.POOL_ALERT_STATE, name, json.dumps({
                "since": since, "sent_at": now if ok else (state or {}).get("sent_at", 0),
                "delivered": ok, "cleared": False}))
        for name, state in told.items():
            if name in current:
                continue
            if not state["delivered"] and not state.get("cleared"):
                client.hdel(redis_keys.POOL_ALERT_STATE, name)  # never told: nothing to take back
                continue
            ok = _send(services, name, "recovered", {"message": f"{name} is over"},
                       capacity, stats, False)
            (sent if ok else failed).append(f"{name} recovered")
            if ok:
                client.hdel(redis_keys.POOL_ALERT_STATE, name)
            else:
                client.hset(redis_keys.POOL_ALERT_STATE, name,
                            json.dumps({**state, "cleared": True, "delivered": True}))
        return {"configured": True, "active": sorted(current), "sent": sent, "failed": failed}
    finally:
        lock.release()


def _send(services: Services, name: str, state: str, info: dict, capacity: dict[str, int],
          stats: dict, repeat: bool) -> bool:
    settings = services.settings
    body = json.dumps({
        "event": "pool_alert", "condition": name.split(":", 1)[0], "state": state,
        "repeat": repeat, "at": datetime.now(UTC).isoformat(), **info,
        "pool": {"keys": stats["totals"]["keys"], "usable_keys": capacity["usable_keys"],
                 "capacity_per_minute": capacity["minute"],
                 "capacity_left_today": capacity["today"],
                 "all_keys_per_minute": capacity["all_minute"],
                 "all_keys_per_day": capacity["all_today"]},
    }, ensure_ascii=False).encode()
    pool = settings.pool
    outcome = post_signed(pool.POOL_ALERT_URL, body, {"X-Pool-Alert": name.split(":")[0]},
                          secret=pool.POOL_ALERT_SECRET, policy=services.url_policy,
                          timeout_s=settings.callbacks.CALLBACK_TIMEOUT_S,
                          max_attempts=ALERT_ATTEMPTS, wait_max_s=2.0)
    if outcome.status != "delivered":
        log.warning("pool alert %s (%s) not delivered: %s", name, state, outcome.error)
    return outcome.status == "delivered"
