"""AccountPool: which Gemini API key a request uses (docs/key-pool.md).

Every decision is one Lua script run inside Redis, so no two callers can both take the
last slot of a key, however many processes ask at once. Keys are taken least recently
used first (round robin) from the `google_accounts:ready` ZSet, which also parks each
saturated or cooling key until the moment it frees, so a saturated pool answers in one
lookup instead of a walk over every key. Time inside the scripts comes
from Redis `TIME`; only the quota day (a calendar day in `QUOTA_TZ`, where Gemini's daily
quotas reset) is computed here and passed in.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import redis

from shared import redis_keys
from shared.errors import ErrorCode, PermanentError, TransientError
from shared.lua import read_script
from shared.redact import mask_key, redact
from shared.redis_conn import REDIS_DOWN

log = logging.getLogger("vision_to_tag.pool")

HALF_OPEN_TRIAL_MS = 30_000
"""After a failure streak, the key's first request back is the only one for this long."""

FAILURE_BACKOFF_MS = 30_000
"""Cooldown after 3 failures in a row; doubles with every further failure…"""

MAX_FAILURE_BACKOFF_MS = 30 * 60_000
"""…up to 30 minutes."""

IMPORT_WAIT_S = 1.0
"""How long a caller waits when an import is swapping accounts in."""

WINDOW_MS = 60_000
"""Gemini counts requests per minute; benchmarks shrink this to run faster."""

SEND_MARGIN_MS = 150
"""How much longer than Gemini's window a request counts in its key's window until send
latencies have been measured: the entry is stamped when the request goes on the wire,
Gemini counts it when it has arrived. Without a margin, a request sent the instant a slot
frees can reach Gemini before the one it replaces had counted a window ago."""

MIN_SEND_MARGIN_MS = 100
"""The margin never goes below this (clock steps, the server reading the body)…"""

MAX_SEND_MARGIN_MS = 5_000
"""…nor above this, whatever one slow send measured."""

SEND_SAMPLES = 200
"""How many recent send latencies (on the wire → body sent) the margin is sized from;
the margin is their 99th percentile plus MIN_SEND_MARGIN_MS."""

MIN_SEND_SAMPLES = 20
"""Below this many samples the margin stays SEND_MARGIN_MS."""

MARGIN_REFRESH_S = 5.0
"""How long a process keeps the margin it computed before reading the samples again."""

BOUNDARY_SLACK_MS = 2_000
"""A per-minute 429 whose `retryDelay` is at most this is a race at the window's edge
(Gemini's arrival clock vs the pool's send clock; Gemini rounds the delay up to whole
seconds), not evidence of a lower limit: the key waits out the delay and learns nothing."""

RACE_STEP_MS = 100
"""A boundary 429 is a race the margin lost: it is recorded as a send this much slower
than the slowest the margin covers, so each one raises the margin by this much (until
the samples age out)."""

BOUNDARY_COOL_MS = 250
"""Shortest wait after a boundary 429 ("0s" or a fraction of a second)."""

LEARNED_LIMIT_MS = 60 * 60_000
"""How long a per-minute limit learned from Gemini's 429s holds without a new lesson
before the configured limit is tried again (probes normally raise it long before)."""

PROBE_QUIET_MS = 2 * 60_000
"""After a lesson (or a refused probe) this long without one, a learned limit allows one
request more per window: accepted, the limit rises by one (a window later the next probe)."""

LIMIT_CHANGES_KEPT = 20
"""How many moves of each key's learned limit `/api/v1/accounts` can show."""

RESYNC_MS = 60_000
"""How often every known key is looked at again, whatever the ready set says."""

DEFAULT_MODEL = "gemini-2.5-flash"
"""The main model when the caller names none (GEMINI_MODEL's default): its quota owner's
names are the ones keys had before quotas were per model (redis_keys.quota_base)."""

PROMISE_GRACE_MS = 2_000
"""A promised slot whose moment has passed still counts this long (its task is on the
way), so the next waiter is not promised the same slot."""


def _read(name: str) -> str:
    return read_script(__file__, name)


_LIMITS = _read("limits.lua")


def with_limits(script: str) -> str:
    """A script with `effective_limit` (limits.lua) defined first: the one rule for a
    key's current request limit, shared by every script that needs it."""
    return _LIMITS + script


KEY_ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")
"""What `account_id` returns; anything else is not a key id."""


PROJECT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
"""What a key's `project` may be: part of Redis key names (redis_keys.quota_base)."""


def tokens_of(member: str) -> int:
    """The input tokens a window entry (`ms:request-id:tokens`) stands for."""
    head, _, tail = member.rpartition(":")
    return int(tail) if head.count(":") == 1 and tail.isdigit() else 0


def account_id(api_key: str) -> str:
    """The id used in Redis key names: never the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


class RequestTooLarge(PermanentError):
    """The request's estimated input tokens exceed every usable key's whole tokens-per-
    minute limit: it can never be sent, so the task fails at once instead of waiting."""

    error_code = ErrorCode.REQUEST_TOO_LARGE


class PoolUnavailable(TransientError):
    """Redis could not be reached: the task goes back to the queue, nothing is lost."""

    error_code = ErrorCode.REDIS_UNAVAILABLE


@contextlib.contextmanager
def _pool_outage() -> Iterator[None]:
    try:
        yield
    except REDIS_DOWN as error:
        raise PoolUnavailable(f"key pool unavailable: {type(error).__name__}") from error


@dataclass(frozen=True)
class Lease:
    """One granted request: send it with `api_key`, then `report` or `release`."""

    key_id: str
    api_key: str
    member: str
    day: str
    quota: str = ""
    """The base of the quota owner (project, model) the request counts in; the lease keeps
    it so a key moved to another project meanwhile is settled where it was counted."""
    model: str = ""

    def __repr__(self) -> str:  # never print the key
        return (f"Lease(key_id={self.key_id!r}, member={self.member!r}, day={self.day!r}, "
                f"quota={self.quota!r})")


@dataclass(frozen=True)
class NoKeyAvailable:
    """No key can take a request now; one will be free in `retry_after_s`."""

    retry_after_s: float
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What Gemini answered, as the pool needs it (built by the tagger)."""

    kind: str  # success | minute | tokens | day | disabled | failure | neutral
    reason: str = ""
    retry_delay_s: float | None = None
    """Gemini's RetryInfo `retryDelay`; None when the answer carried none."""
    scope: str = "key"
    """Whose quota a 429 is about: `project` (QuotaFailure names a per-project or per-model
    quota: every key of the project waits) or `key` (the key alone)."""

    @classmethod
    def success(cls) -> Outcome:
        return cls("success")


class AccountPool:
    def __init__(
        self,
        client: redis.Redis,
        quota_tz: str = "America/Los_Angeles",
        clock: Callable[[], datetime] | None = None,
        window_ms: int = WINDOW_MS,
        resync_ms: int = RESYNC_MS,
        model: str = DEFAULT_MODEL,
    ) -> None:
        self.redis = client
        self.model = model
        self.base_window_ms = window_ms
        self.resync_ms = resync_ms
        self.tz = ZoneInfo(quota_tz)
        self.clock = clock or (lambda: datetime.now(self.tz))
        self._acquire = client.register_script(with_limits(_read("acquire.lua")))
        self._last_day: str | None = None  # the quota day this process last asked for
        self._report = client.register_script(_read("report.lua"))
        self._slot = client.register_script(with_limits(_read("slot.lua")))
        self._stamp = client.register_script(with_limits(_read("stamp.lua")))
        self._margin = (SEND_MARGIN_MS, 0.0)  # (ms, monotonic time it was computed)
        self._retoken = client.register_script(_read("retoken.lua"))

    # --- the rate window -----------------------------------------------------------------

    @property
    def window_ms(self) -> int:
        """How long a request counts in its key's window: Gemini's window plus the send
        margin (what the pool's stamp may be early by, measured)."""
        return self.base_window_ms + self.send_margin_ms()

    def send_margin_ms(self) -> int:
        """The 99th percentile of recent send latencies (plus MIN_SEND_MARGIN_MS), shared
        by every process through Redis and recomputed at most every MARGIN_REFRESH_S."""
        margin, computed_at = self._margin
        if time.monotonic() - computed_at < MARGIN_REFRESH_S:
            return margin
        try:
            latencies = self.redis.lrange(redis_keys.ACCOUNT_SEND_LATENCY, 0, -1)
            samples = sorted(int(v) for v in latencies)
        except REDIS_DOWN:
            return margin  # the call that needs the pool reports the outage itself
        if len(samples) >= MIN_SEND_SAMPLES:
            p99 = samples[min(len(samples) - 1, int(0.99 * len(samples)))]
            margin = min(MAX_SEND_MARGIN_MS, p99 + MIN_SEND_MARGIN_MS)
        self._margin = (margin, time.monotonic())
        return margin

    def record_send_latency(self, seconds: float) -> None:
        """One request's time from going on the wire to its body being sent."""
        with _pool_outage():
            pipe = self.redis.pipeline(transaction=False)
            pipe.lpush(redis_keys.ACCOUNT_SEND_LATENCY, max(0, round(seconds * 1000)))
            pipe.ltrim(redis_keys.ACCOUNT_SEND_LATENCY, 0, SEND_SAMPLES - 1)
            pipe.execute()

    # --- quota day -------------------------------------------------------------------

    def quota_day(self) -> tuple[str, int]:
        """Today in QUOTA_TZ and the epoch ms when the next quota day starts (DST-aware)."""
        now = self.clock().astimezone(self.tz)
        tomorrow = (now + timedelta(days=1)).date()
        next_midnight = datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=self.tz)
        return now.date().isoformat(), int(next_midnight.timestamp() * 1000)

    # --- the three calls a request makes -----------------------------------------------

    def acquire(self, tokens: int = 0, model: str | None = None,
                _rebuilt: bool = False) -> Lease | NoKeyAvailable:
        """A key for one request of about `tokens` input tokens (0: not counted against
        tokens-per-minute limits) to `model` (None: the main model), counted in the quota
        of the key's project and that model."""
        model = model or self.model
        day, next_day_ms = self.quota_day()
        new_day = day != self._last_day
        with _pool_outage():
            answer = self._acquire(
                keys=[redis_keys.ACCOUNT_IDS, redis_keys.ACCOUNT_IMPORT_LOCK,
                      redis_keys.account_ready(model, self.model),
                      redis_keys.account_ready_day(model, self.model),
                      redis_keys.ACCOUNT_WAIT_REASON, redis_keys.ACCOUNT_PROMISED,
                      redis_keys.ACCOUNT_RESYNC, redis_keys.ACCOUNT_MODELS],
                args=[day, next_day_ms, uuid.uuid4().hex, HALF_OPEN_TRIAL_MS,
                      "1" if new_day else "0", self.window_ms, self.resync_ms,
                      redis_keys.ACCOUNT_PREFIX, redis_keys.DAILY_TTL_S, max(0, int(tokens)),
                      model, self.model, redis_keys.PROJECT_PREFIX],
            )
        self._last_day = day
        answer = [part.decode() if isinstance(part, bytes) else str(part) for part in answer]
        verdict = answer[0]
        if verdict == "retry":  # the ready set was rebuilt: one more look, not more
            if _rebuilt:
                return NoKeyAvailable(60.0, "no usable key in the pool")
            return self.acquire(tokens, model, _rebuilt=True)
        if verdict == "toolarge":
            raise RequestTooLarge(
                f"the request (about {tokens} input tokens) is larger than every key's "
                "tokens-per-minute limit (tpm_limit): use a lower media resolution or a "
                "shorter video", error_code=ErrorCode.REQUEST_TOO_LARGE)
        if verdict == "importing":
            return NoKeyAvailable(IMPORT_WAIT_S, "accounts are being imported")
        if verdict == "ok":
            self._warn_bad(answer[5:])
            return Lease(key_id=answer[1], api_key=answer[2], member=answer[3], day=day,
                         quota=answer[4], model=model)
        if verdict == "wait":
            self._warn_bad(answer[3:])
            return NoKeyAvailable(int(answer[1]) / 1000, answer[2])
        self._warn_bad(answer[1:])
        return NoKeyAvailable(60.0, "no usable key in the pool")

    def quota_of(self, key_id: str, model: str | None = None) -> str:
        """The base of the quota owner a request of `key_id` to `model` counts in now."""
        project = self.redis.hget(redis_keys.account_info(key_id), "project") or ""
        if isinstance(project, bytes):
            project = project.decode()
        return redis_keys.quota_base(key_id, project, model or self.model, self.model)

    def promise_slot(self, model: str | None = None, *, peek: bool = False) -> float | None:
        """Seconds until the pool's next unpromised request slot, now promised to the
        caller (None: no key can take a request at all). Waiting tasks each get their own
        slot instead of all being told the same earliest moment. `peek`: promise nothing,
        only say when (the fair share takes the next delivery only when a slot is near,
        so a newcomer is not queued behind a backlog's promises)."""
        day, next_day_ms = self.quota_day()
        with _pool_outage():
            wait_ms = self._slot(keys=[redis_keys.ACCOUNT_IDS, redis_keys.ACCOUNT_PROMISED],
                                 args=[day, next_day_ms, self.window_ms, uuid.uuid4().hex,
                                       PROMISE_GRACE_MS, redis_keys.ACCOUNT_PREFIX,
                                       redis_keys.PROJECT_PREFIX, model or self.model,
                                       self.model, "1" if peek else "0"])
        return None if int(wait_ms) < 0 else int(wait_ms) / 1000

    def next_free_in(self) -> float | None:
        """Seconds until the earliest moment a key may be free (0: now), from the ready
        set — a hint, re-checked by `acquire`; None when the pool has no key at all."""
        with _pool_outage():
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrange(redis_keys.ACCOUNT_READY, 0, 0, withscores=True)
            pipe.scard(redis_keys.ACCOUNT_IDS)
            pipe.time()
            first, count, (seconds, micros) = pipe.execute()
        if not count:
            return None
        if not first:  # the ready set is rebuilt by the next acquire
            return 0.0
        return max(0.0, first[0][1] - (seconds * 1_000_000 + micros)) / 1_000_000

    def stamp_sent(self, lease: Lease) -> bool:
        """Move the lease's window entry to now, when the request really goes on the wire:
        Gemini counts arrivals, so a slot granted early frees a window after sending.
        False: Gemini announced a cooldown for the key (or its project) since the lease was
        granted — the request must not be sent (release the lease and take another key)."""
        quota = self._quota(lease)
        with _pool_outage():
            answer = self._stamp(keys=[redis_keys.quota_window(quota),
                                       redis_keys.account_ready(self._model(lease), self.model),
                                       redis_keys.quota_info(quota),
                                       redis_keys.account_info(lease.key_id),
                                       redis_keys.quota_info(main_quota(quota))],
                                 args=[lease.member, self.window_ms, lease.key_id])
        return int(answer) != 2

    def record_tokens(self, lease: Lease, tokens: int) -> None:
        """Correct the lease's window entry with the input tokens Gemini really counted
        (`usageMetadata.promptTokenCount`), so the token window is what Gemini sees."""
        with _pool_outage():
            self._retoken(keys=[redis_keys.quota_window(self._quota(lease))],
                          args=[lease.member, max(0, int(tokens))])

    def _quota(self, lease: Lease) -> str:
        return lease.quota or self.quota_of(lease.key_id, lease.model or None)

    def _model(self, lease: Lease) -> str:
        return lease.model or self.model

    def record_usage(self, lease: Lease, input_tokens: int, output_tokens: int,
                     cost_usd: float) -> None:
        """Add one answered request's tokens and estimated cost to the key's day."""
        name = redis_keys.account_usage(lease.key_id)
        with _pool_outage():
            pipe = self.redis.pipeline(transaction=False)
            pipe.hincrby(name, f"{lease.day}:input", int(input_tokens))
            pipe.hincrby(name, f"{lease.day}:output", int(output_tokens))
            pipe.hincrby(name, f"{lease.day}:cost_micro", round(cost_usd * 1_000_000))
            pipe.expire(name, redis_keys.HISTORY_TTL_S)  # the key's history (issue 25)
            pipe.execute()

    def release(self, lease: Lease) -> None:
        """Refund a request that was never sent (it does not count against the quotas)."""
        quota = self._quota(lease)
        seconds, micros = self.redis.time()
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(redis_keys.quota_window(quota), lease.member)
        pipe.hincrby(redis_keys.quota_daily(quota), lease.day, -1)
        pipe.zadd(redis_keys.account_ready(self._model(lease), self.model),
                  {lease.key_id: seconds * 1_000_000 + micros}, lt=True)
        pipe.execute()

    def report(self, key_id: str, outcome: Outcome, member: str = "",
               lease: Lease | None = None) -> None:
        """`member`: the lease's window entry — taken out again when Gemini refused the
        request with a per-minute 429 (a refused request does not count), and how a probe
        over a learned limit is recognised when it succeeds. With `lease`, the outcome is
        settled in the quota the request was counted in (else the key's current one for
        the main model)."""
        day, next_day_ms = self.quota_day()
        quota = self._quota(lease) if lease else self.quota_of(key_id)
        model = self._model(lease) if lease else self.model
        delay_ms = -1 if outcome.retry_delay_s is None else int(outcome.retry_delay_s * 1000)
        if outcome.kind == "minute" and 0 <= delay_ms <= BOUNDARY_SLACK_MS:
            late = self.send_margin_ms() - MIN_SEND_MARGIN_MS + RACE_STEP_MS
            self.record_send_latency(late / 1000)
        with _pool_outage():
            self._report(
                keys=[redis_keys.account_info(key_id), redis_keys.quota_window(quota),
                      redis_keys.account_ready(model, self.model),
                      redis_keys.ACCOUNT_WAIT_REASON, redis_keys.quota_limit_changes(quota),
                      # history (issue 25): the key's day and the pool's minute
                      redis_keys.account_usage(key_id),
                      redis_keys.pool_minute(int(time.time() // 60)),
                      redis_keys.quota_info(quota), redis_keys.quota_info(main_quota(quota))],
                args=[outcome.kind, delay_ms, next_day_ms, redact(outcome.reason)[:500],
                      FAILURE_BACKOFF_MS, MAX_FAILURE_BACKOFF_MS, key_id, self.window_ms,
                      LEARNED_LIMIT_MS, member, BOUNDARY_SLACK_MS, PROBE_QUIET_MS,
                      BOUNDARY_COOL_MS, LIMIT_CHANGES_KEPT, day, redis_keys.HISTORY_TTL_S,
                      redis_keys.POOL_MINUTE_TTL_S, outcome.scope],
            )

    # --- administration --------------------------------------------------------------

    def set_enabled(self, key_id: str, enabled: bool) -> bool:
        """An operator brings a key back (status active, failures and cooldown cleared) or
        takes it out; False when the pool has no such key."""
        info = redis_keys.account_info(key_id)
        with _pool_outage():
            if not self.redis.exists(info):
                return False
            ready_sets = self.ready_sets()
            pipe = self.redis.pipeline(transaction=True)
            if enabled:
                pipe.hset(info, mapping={"status": "active", "consecutive_failures": 0,
                                         "cooldown_until": 0, "announced_until": 0,
                                         "disabled_reason": ""})
                for name in ready_sets:
                    pipe.zadd(name, {key_id: 0})
            else:
                pipe.hset(info, mapping={"status": "disabled",
                                         "disabled_reason": "disabled by an operator"})
                for name in ready_sets:
                    pipe.zrem(name, key_id)
            pipe.execute()
        log.info("account %s %s by an operator", key_id, "enabled" if enabled else "disabled",
                 extra={"key_id": key_id})
        return True

    def models(self) -> list[str]:
        """The main model first, then every other model keys were handed out or imported
        for (each has its own quotas)."""
        others = {m.decode() if isinstance(m, bytes) else m
                  for m in self.redis.smembers(redis_keys.ACCOUNT_MODELS)}
        return [self.model, *sorted(others - {self.model})]

    def ready_sets(self) -> list[str]:
        """Every model's ready set (a key coming back goes into each)."""
        return [redis_keys.account_ready(m, self.model) for m in self.models()]

    # --- stats -----------------------------------------------------------------------

    def key_count(self) -> int:
        """How many keys the pool holds, whatever their state (one SCARD: cheap enough for
        every create request)."""
        return int(self.redis.scard(redis_keys.ACCOUNT_IDS))

    def stats(self) -> dict[str, object]:
        """Per key (masked), per project and model, and totals; no secret in the answer.
        A key's use and limits are its project's for the main model (what binds it)."""
        day, _ = self.quota_day()
        seconds, micros = self.redis.time()
        now_ms = seconds * 1000 + micros // 1000
        ids = sorted(self.redis.smembers(redis_keys.ACCOUNT_IDS))
        pipe = self.redis.pipeline(transaction=False)
        for key_id in ids:
            pipe.hgetall(redis_keys.account_info(key_id))
            pipe.hmget(redis_keys.account_usage(key_id), f"{day}:input", f"{day}:output",
                       f"{day}:cost_micro")
        rows = pipe.execute()
        infos = {key_id: rows[2 * index] for index, key_id in enumerate(ids)}
        owners = self._owners(infos, day, now_ms)
        accounts = []
        for index, key_id in enumerate(ids):
            info, spent = infos[key_id], rows[2 * index + 1]
            main = owners[(info.get("project", ""), key_id, self.model)]
            entry = account_stats(key_id, {**info, **main["info"],
                                           "cooldown_until": max_ms(info, main["info"])},
                                  main["used"], len(main["members"]), now_ms)
            entry["project"] = info.get("project") or None
            entry["limit_changes"] = main["changes"]
            entry["tokens_this_minute"] = sum(tokens_of(member) for member in main["members"])
            entry["today"] = {"input_tokens": int(spent[0] or 0),
                              "output_tokens": int(spent[1] or 0),
                              "cost_usd": int(spent[2] or 0) / 1_000_000}
            accounts.append(entry)
        projects = project_stats(accounts, owners, self.models(), now_ms)
        left_today = left_minute = 0
        for project in projects:
            use = project["models"][self.model]
            if project["usable_keys"] and not use.get("problem"):
                left_today += max(0, use["daily_limit"] - use["used_today"])
                if use["cooldown_left_s"] == 0:
                    left_minute += max(0, use["effective_minute_limit"]
                                       - use["used_this_minute"])
        return {
            "quota_day": day,
            "send_margin_ms": self.send_margin_ms(),
            "model": self.model,
            "accounts": accounts,
            "projects": projects,
            "totals": {"keys": len(ids),
                       "active": sum(1 for a in accounts if a["status"] == "active"),
                       "projects": len(projects),
                       "capacity_left_today": left_today,
                       "capacity_left_this_minute": min(left_minute, left_today)},
        }

    def _owners(self, infos: dict[str, dict], day: str,
                now_ms: int) -> dict[tuple[str, str, str], dict]:
        """(project, key id, model) → the quota owner's info, use today, window entries and
        limit changes (read once per owner however many keys share it)."""
        bases: dict[tuple[str, str, str], str] = {}
        for key_id, info in infos.items():
            for model in self.models():
                project = info.get("project", "")
                bases[(project, key_id, model)] = redis_keys.quota_base(
                    key_id, project, model, self.model)
        unique = sorted(set(bases.values()))
        pipe = self.redis.pipeline(transaction=False)
        for base in unique:
            pipe.hgetall(redis_keys.quota_info(base))
            pipe.hget(redis_keys.quota_daily(base), day)
            pipe.zrangebyscore(redis_keys.quota_window(base), now_ms - self.window_ms, "+inf")
            pipe.lrange(redis_keys.quota_limit_changes(base), 0, LIMIT_CHANGES_KEPT - 1)
        rows = pipe.execute()
        read = {base: {"base": base, "info": rows[4 * i], "used": rows[4 * i + 1],
                       "members": rows[4 * i + 2],
                       "changes": [json.loads(c) for c in rows[4 * i + 3]]}
                for i, base in enumerate(unique)}
        for base, found in read.items():
            if "minute_limit" not in found["info"]:  # limits default to the main model's
                limits = read[main_quota(base)]["info"]
                found["info"] = {**found["info"], **{f: limits[f] for f in OWNER_LIMITS
                                                     if f in limits}}
        return {owner: read[base] for owner, base in bases.items()}

    def _warn_bad(self, bad: list[str]) -> None:
        for item in bad:
            key_id, _, reason = item.partition(":")
            log.warning("skipped account %s: %s", key_id, reason, extra={"key_id": key_id})


OWNER_LIMITS = ("minute_limit", "quota_daily", "tpm_limit")
"""The limits a quota owner's info hash holds (the smallest its project's keys wrote)."""

def max_ms(*infos: dict) -> int:
    """The latest `cooldown_until` of several hashes (a key's own, its project's)."""
    return max(int(info.get("cooldown_until") or 0) for info in infos)


def project_stats(accounts: list[dict], owners: dict[tuple[str, str, str], dict],
                  models: list[str], now_ms: int) -> list[dict[str, object]]:
    """The keys grouped by project (a key without one alone), each project's use against
    its limits per model."""
    groups: dict[str, dict[str, object]] = {}
    for entry in accounts:
        project = entry["project"] or ""
        group = groups.setdefault(project or entry["key_id"], {
            "project": entry["project"], "keys": [], "usable_keys": 0, "models": {}})
        group["keys"].append(entry["key_id"])
        if entry["status"] == "active" and not entry.get("problem"):
            group["usable_keys"] += 1
        for model in models:
            found = owners[(project, entry["key_id"], model)]
            if model not in group["models"]:
                group["models"][model] = quota_use(found, now_ms)
    return [groups[name] for name in sorted(groups)]


def quota_use(owner: dict, now_ms: int) -> dict[str, object]:
    """One quota owner's use against its limits (the numbers `account_stats` shows)."""
    info = owner["info"]
    use = account_stats("", info, owner["used"], len(owner["members"]), now_ms)
    shown = {name: use[name] for name in (
        "minute_limit", "effective_minute_limit", "used_this_minute", "quota_daily",
        "used_today", "tpm_limit", "cooldown_left_s", "learned_limit_left_s",
        "next_probe_in_s", "problem") if name in use}
    shown["daily_limit"] = shown.pop("quota_daily")
    shown["tokens_this_minute"] = sum(tokens_of(member) for member in owner["members"])
    shown["limit_changes"] = owner["changes"]
    return shown


def main_quota(quota: str) -> str:
    """The base of the main model's owner of the same project (limits default to its)."""
    return quota.split(redis_keys.MODEL_INFIX, 1)[0]


def account_stats(key_id: str, info: dict, used: str | None, minute: int,
                  now_ms: int) -> dict[str, object]:
    """One key's line in `stats()`; a hand-edited hash shows up as `problem`, not a crash."""
    entry: dict[str, object] = {
        "key_id": key_id, "key": mask_key(info.get("api_key", "")),
        "status": info.get("status", "missing"), "username": info.get("username", ""),
        "used_this_minute": int(minute),
        # redacted on read too: values stored before redaction existed may quote a key
        "last_error": redact(info.get("last_error", "")),
        "disabled_reason": redact(info.get("disabled_reason", "")),
    }
    try:
        entry["quota_daily"] = int(info["quota_daily"])
        entry["minute_limit"] = int(info["minute_limit"])
        entry["used_today"] = int(used or 0)
        cooldown_until = int(info.get("cooldown_until") or 0)
        entry["cooldown_left_s"] = round(max(0, cooldown_until - now_ms) / 1000, 1)
        entry["effective_minute_limit"] = entry["minute_limit"]
        entry["tpm_limit"] = int(info["tpm_limit"]) if info.get("tpm_limit") else None
        learned_until = int(info.get("learned_until") or 0)
        if learned_until > now_ms and info.get("learned_limit"):
            entry["effective_minute_limit"] = min(int(info["learned_limit"]),
                                                  int(info["minute_limit"]))
            entry["learned_limit_left_s"] = round((learned_until - now_ms) / 1000, 1)
            entry["next_probe_in_s"] = round(
                max(0, int(info.get("probe_at") or 0) - now_ms) / 1000, 1)
    except (KeyError, ValueError):
        entry.update(quota_daily=0, minute_limit=0, used_today=0, cooldown_left_s=0,
                     effective_minute_limit=0,
                     problem="malformed account hash: skipped by acquire")
    return entry
