"""What the key pool did, per key and per quota day (HISTORY_DAYS kept), and per minute
over the last hour for the whole pool.

The counters are the pool's own: `report.lua` counts every answered request into the
key's `usage` hash (`{day}:requests`, `429_minute|429_tokens|429_day`, `errors`) and the
pool's minute hash; `record_usage` adds tokens and cost to the same hash; the probes add
`probes`/`probes_ok`. The day is the pool's quota day (QUOTA_TZ), as for the quotas.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from shared import redis_keys
from shared.accounts.pool import AccountPool

MAX_DAYS = redis_keys.HISTORY_DAYS
COUNTERS = ("requests", "429_minute", "429_tokens", "429_day", "errors", "input",
            "output", "cost_micro", "probes", "probes_ok")
PROBES_SHOWN = 20
MINUTES_SHOWN = 60


class HistoryQuery(BaseModel):
    """Query string of the history routes."""

    model_config = ConfigDict(extra="forbid")

    days: int = Field(default=30, ge=1, le=MAX_DAYS,
                      description=f"quota days to answer, today included (1-{MAX_DAYS})")


def quota_days(pool: AccountPool, count: int) -> list[str]:
    """The last `count` quota days, oldest first, today last."""
    today = date.fromisoformat(pool.quota_day()[0])
    return [(today - timedelta(days=back)).isoformat() for back in range(count - 1, -1, -1)]


def _row(day: str, values: dict[str, int]) -> dict[str, object]:
    return {"day": day, "requests": values["requests"],
            "429s": {"minute": values["429_minute"], "tokens": values["429_tokens"],
                     "day": values["429_day"]},
            "errors": values["errors"], "input_tokens": values["input"],
            "output_tokens": values["output"],
            "cost_usd": round(values["cost_micro"] / 1_000_000, 6),
            "probes": values["probes"], "probes_ok": values["probes_ok"]}


def _counts(pool: AccountPool, key_ids: list[str], days: list[str]) -> dict[str, dict[str, int]]:
    """day → counter → the sum over `key_ids`."""
    fields = [f"{day}:{counter}" for day in days for counter in COUNTERS]
    pipe = pool.redis.pipeline(transaction=False)
    for key_id in key_ids:
        pipe.hmget(redis_keys.account_usage(key_id), fields)
    summed = {day: dict.fromkeys(COUNTERS, 0) for day in days}
    for values in pipe.execute():
        for name, value in zip(fields, values, strict=True):
            if value:
                day, _, counter = name.partition(":")
                summed[day][counter] += int(value)
    return summed


def key_history(pool: AccountPool, key_id: str, days: int) -> dict[str, object] | None:
    """One key's days (oldest first) and its latest probes; None for an unknown key."""
    if not pool.redis.sismember(redis_keys.ACCOUNT_IDS, key_id):
        return None
    wanted = quota_days(pool, days)
    counts = _counts(pool, [key_id], wanted)
    probes = [json.loads(item) for item in
              pool.redis.lrange(redis_keys.account_probes(key_id), 0, PROBES_SHOWN - 1)]
    return {"key_id": key_id, "days": [_row(day, counts[day]) for day in wanted],
            "probes": probes}


def project_history(pool: AccountPool, project: str, days: int) -> dict[str, object] | None:
    """A project's days (oldest first): the sums over its keys; None for an unknown one."""
    ids = sorted(pool.redis.smembers(redis_keys.ACCOUNT_IDS))
    pipe = pool.redis.pipeline(transaction=False)
    for key_id in ids:
        pipe.hget(redis_keys.account_info(key_id), "project")
    keys = [key_id for key_id, found in zip(ids, pipe.execute(), strict=True)
            if found == project]
    if not keys:
        return None
    wanted = quota_days(pool, days)
    counts = _counts(pool, keys, wanted)
    return {"project": project, "keys": keys,
            "days": [_row(day, counts[day]) for day in wanted]}


def pool_history(pool: AccountPool, days: int) -> dict[str, object]:
    """The pool's totals per day and its last hour, minute by minute, against capacity."""
    wanted = quota_days(pool, days)
    ids = sorted(pool.redis.smembers(redis_keys.ACCOUNT_IDS))
    counts = _counts(pool, ids, wanted)
    return {"keys": len(ids), "days": [_row(day, counts[day]) for day in wanted],
            "last_hour": last_hour(pool)}


def usable_capacity(stats: dict) -> dict[str, int]:
    """Requests the pool can serve with its main model: per minute (the limits of the
    projects with a key usable now — every key of a project shares its quota) and left
    today, against what all its projects together could (the alert fractions)."""
    minute = today = all_minute = all_today = 0
    model = stats.get("model")
    for project in stats.get("projects", []):
        use = project["models"][model] if model in project["models"] else next(
            iter(project["models"].values()))
        all_minute += int(use.get("minute_limit") or 0)
        all_today += int(use.get("daily_limit") or 0)
        if not project["usable_keys"] or use.get("problem"):
            continue
        left_today = max(0, use["daily_limit"] - use["used_today"])
        today += left_today
        if left_today and use["cooldown_left_s"] == 0:
            minute += use["effective_minute_limit"]
    usable = sum(1 for entry in stats["accounts"]
                 if entry["status"] == "active" and not entry.get("problem")
                 and entry["cooldown_left_s"] == 0
                 and entry["used_today"] < entry["quota_daily"])
    return {"minute": minute, "today": today, "all_minute": all_minute,
            "all_today": all_today, "usable_keys": usable}


def record_capacity(pool: AccountPool, capacity: dict[str, int]) -> None:
    """This minute's capacity beside its use (drawn by the dashboard's last-hour chart)."""
    name = redis_keys.pool_minute(int(time.time() // 60))
    pipe = pool.redis.pipeline(transaction=False)
    pipe.hset(name, "capacity", capacity["minute"])
    pipe.expire(name, redis_keys.POOL_MINUTE_TTL_S)
    pipe.execute()


def last_hour(pool: AccountPool) -> list[dict[str, object]]:
    """MINUTES_SHOWN minutes, oldest first: requests, 429s and capacity (None where no
    job recorded it; the current minute is measured now)."""
    now_minute = int(time.time() // 60)
    minutes = list(range(now_minute - MINUTES_SHOWN + 1, now_minute + 1))
    pipe = pool.redis.pipeline(transaction=False)
    for minute in minutes:
        pipe.hgetall(redis_keys.pool_minute(minute))
    rows = []
    for minute, values in zip(minutes, pipe.execute(), strict=True):
        rows.append({
            "minute": datetime.fromtimestamp(minute * 60, UTC).isoformat(),
            "requests": int(values.get("requests") or 0),
            "429s": sum(int(values.get(name) or 0)
                        for name in ("429_minute", "429_tokens", "429_day")),
            "capacity": int(values["capacity"]) if "capacity" in values else None})
    if rows[-1]["capacity"] is None:
        rows[-1]["capacity"] = usable_capacity(pool.stats())["minute"]
    return rows


def prune(pool: AccountPool) -> int:
    """Drop days older than MAX_DAYS from every key's usage hash; how many fields went."""
    oldest = quota_days(pool, MAX_DAYS)[0]
    removed = 0
    for key_id in pool.redis.smembers(redis_keys.ACCOUNT_IDS):
        name = redis_keys.account_usage(key_id)
        stale = [field for field in pool.redis.hkeys(name) if field.split(":", 1)[0] < oldest]
        if stale:
            removed += pool.redis.hdel(name, *stale)
    return removed
