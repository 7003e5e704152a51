"""AccountPool on real Redis and on the embedded one: exact quotas, round robin,
cooldowns, the quota day, hand-edited hashes, Redis down."""

from __future__ import annotations

import logging
import multiprocessing
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis

from shared import redis_keys
from shared.accounts.importer import AccountEntry, import_accounts
from shared.accounts.pool import (
    BOUNDARY_COOL_MS,
    MIN_SEND_MARGIN_MS,
    MIN_SEND_SAMPLES,
    PROBE_QUIET_MS,
    RACE_STEP_MS,
    SEND_MARGIN_MS,
    SEND_SAMPLES,
    AccountPool,
    Lease,
    NoKeyAvailable,
    Outcome,
    PoolUnavailable,
)
from shared.redis_conn import connect
from tests.conftest import REDIS_URL

PT = ZoneInfo("America/Los_Angeles")


def entry(n: int, daily: int = 1000, minute: int = 10) -> AccountEntry:
    return AccountEntry(api_key=f"AIzaSyTEST{n:030d}", daily_limit=daily, minute_limit=minute,
                        username=f"user{n}", password="s3cret-pw", phone="+10000", email="a@b.c")


def seed(client: redis.Redis, count: int, **limits) -> list[AccountEntry]:
    entries = [entry(n, **limits) for n in range(count)]
    import_accounts(client, entries)
    return entries


def test_exactly_n_times_m_grants_then_the_right_wait(any_redis: redis.Redis) -> None:
    seed(any_redis, 3, minute=4)
    pool = AccountPool(any_redis)
    leases = [pool.acquire() for _ in range(12)]
    assert all(isinstance(lease, Lease) for lease in leases)
    refused = pool.acquire()
    assert isinstance(refused, NoKeyAvailable) and refused.reason == "minute limit reached"
    assert 55 < refused.retry_after_s <= 60 + SEND_MARGIN_MS / 1000


def test_round_robin_spreads_use_evenly(any_redis: redis.Redis) -> None:
    seed(any_redis, 3, minute=100)
    pool = AccountPool(any_redis)
    counts: dict[str, int] = {}
    for _ in range(31):
        lease = pool.acquire()
        counts[lease.key_id] = counts.get(lease.key_id, 0) + 1
    assert max(counts.values()) - min(counts.values()) <= 1 and sum(counts.values()) == 31


def test_release_refunds_the_request(any_redis: redis.Redis) -> None:
    seed(any_redis, 1, minute=1)
    pool = AccountPool(any_redis)
    lease = pool.acquire()
    assert isinstance(pool.acquire(), NoKeyAvailable)
    pool.release(lease)
    assert isinstance(pool.acquire(), Lease)
    assert pool.stats()["accounts"][0]["used_today"] == 1


def test_minute_429_cools_down_then_returns(any_redis: redis.Redis) -> None:
    seed(any_redis, 1, minute=100)
    pool = AccountPool(any_redis)
    lease = pool.acquire()
    pool.report(lease.key_id, Outcome("minute", "429 per minute", retry_delay_s=1.0))
    waiting = pool.acquire()
    assert isinstance(waiting, NoKeyAvailable) and waiting.reason == "cooling down"
    assert 0 < waiting.retry_after_s <= 1.0
    time.sleep(1.1)
    assert isinstance(pool.acquire(), Lease)


def test_disabled_key_never_returns(any_redis: redis.Redis) -> None:
    seed(any_redis, 2, minute=100)
    pool = AccountPool(any_redis)
    first = pool.acquire()
    pool.report(first.key_id, Outcome("disabled", "API_KEY_INVALID"))
    assert {pool.acquire().key_id for _ in range(5)} != {first.key_id}
    assert all(pool.acquire().key_id != first.key_id for _ in range(10))
    stats = {a["key_id"]: a for a in pool.stats()["accounts"]}
    assert stats[first.key_id]["status"] == "disabled"
    assert stats[first.key_id]["disabled_reason"] == "API_KEY_INVALID"


def test_failure_streak_cools_down_and_half_opens(any_redis: redis.Redis, monkeypatch) -> None:
    import shared.accounts.pool as pool_module

    monkeypatch.setattr(pool_module, "FAILURE_BACKOFF_MS", 500)
    seed(any_redis, 1, minute=100)
    pool = AccountPool(any_redis)
    key_id = pool.acquire().key_id
    for _ in range(2):
        pool.report(key_id, Outcome("failure", "HTTP 503"))
    assert isinstance(pool.acquire(), Lease)  # two failures: still usable
    pool.report(key_id, Outcome("failure", "HTTP 503"))
    assert isinstance(pool.acquire(), NoKeyAvailable)
    time.sleep(0.6)
    trial = pool.acquire()
    assert isinstance(trial, Lease)  # half-open: one trial request …
    assert isinstance(pool.acquire(), NoKeyAvailable)  # … and only one
    pool.report(key_id, Outcome.success())
    assert isinstance(pool.acquire(), Lease)
    assert pool.stats()["accounts"][0]["last_error"] == "HTTP 503"


def test_daily_quota_rolls_over_at_pacific_midnight(any_redis: redis.Redis) -> None:
    seed(any_redis, 1, daily=2, minute=100)
    now = {"t": datetime(2026, 11, 29, 23, 59, 0, tzinfo=PT)}
    pool = AccountPool(any_redis, clock=lambda: now["t"])
    assert isinstance(pool.acquire(), Lease) and isinstance(pool.acquire(), Lease)
    spent = pool.acquire()
    assert isinstance(spent, NoKeyAvailable) and spent.reason == "daily quota used"
    now["t"] = datetime(2026, 11, 30, 0, 0, 30, tzinfo=PT)
    assert isinstance(pool.acquire(), Lease)
    assert pool.stats()["quota_day"] == "2026-11-30"


def test_quota_day_handles_daylight_saving(any_redis: redis.Redis) -> None:
    spring = datetime(2026, 3, 8, 0, 30, tzinfo=PT)  # a 23-hour day
    pool = AccountPool(any_redis, clock=lambda: spring)
    day, next_ms = pool.quota_day()
    assert day == "2026-03-08"
    assert next_ms / 1000 - spring.timestamp() == pytest.approx(22.5 * 3600)
    utc_evening = datetime(2026, 11, 30, 5, 0, tzinfo=ZoneInfo("UTC"))  # 21:00 PT on the 29th
    assert AccountPool(any_redis, clock=lambda: utc_evening).quota_day()[0] == "2026-11-29"


def test_day_429_parks_the_key_until_the_next_quota_day(any_redis: redis.Redis) -> None:
    seed(any_redis, 1, minute=100)
    pool = AccountPool(any_redis)
    pool.report(pool.acquire().key_id, Outcome("day", "PerDay quota"))
    waiting = pool.acquire()
    _, next_ms = pool.quota_day()
    assert waiting.reason == "cooling down"
    assert waiting.retry_after_s == pytest.approx(next_ms / 1000 - time.time(), abs=5)


def test_import_lock_pauses_acquisitions(any_redis: redis.Redis) -> None:
    seed(any_redis, 1)
    any_redis.set(redis_keys.ACCOUNT_IMPORT_LOCK, "someone", ex=5)
    waiting = AccountPool(any_redis).acquire()
    assert isinstance(waiting, NoKeyAvailable) and "import" in waiting.reason


def test_hand_edited_hashes_are_skipped_and_reported(any_redis: redis.Redis, caplog) -> None:
    entries = seed(any_redis, 3, minute=100)
    from shared.accounts.pool import account_id

    broken, bad_counter, good = (account_id(e.api_key) for e in entries)
    any_redis.hdel(redis_keys.account_info(broken), "quota_daily")
    pool = AccountPool(any_redis)
    any_redis.hset(redis_keys.account_daily(bad_counter), pool.quota_day()[0], "lots")
    with caplog.at_level(logging.WARNING):
        granted = {pool.acquire().key_id for _ in range(6)}
    assert granted == {good}
    assert any(broken in r.getMessage() for r in caplog.records)
    assert any(bad_counter in r.getMessage() for r in caplog.records)
    problems = {a["key_id"] for a in pool.stats()["accounts"] if a.get("problem")}
    assert broken in problems


def test_empty_pool_and_redis_down(any_redis: redis.Redis) -> None:
    empty = AccountPool(any_redis).acquire()
    assert isinstance(empty, NoKeyAvailable) and empty.retry_after_s > 0
    dead = AccountPool(connect("redis://127.0.0.1:1/0", Path("unused")))
    with pytest.raises(PoolUnavailable) as caught:
        dead.acquire()
    assert caught.value.error_code == "redis_unavailable"


def test_stats_mask_keys_and_add_up(any_redis: redis.Redis) -> None:
    entries = seed(any_redis, 2, daily=50, minute=10)
    pool = AccountPool(any_redis)
    for _ in range(3):
        pool.acquire()
    stats = pool.stats()
    assert stats["totals"] == {"keys": 2, "active": 2, "projects": 2, "capacity_left_today": 97,
                               "capacity_left_this_minute": 17}
    assert {a["key"] for a in stats["accounts"]} == {"AIza…0000", "AIza…0001"}
    assert entries[0].api_key not in repr(stats)


def hammer(worker: int, rounds: int, results) -> None:
    pool = AccountPool(redis.Redis.from_url(REDIS_URL, decode_responses=True))
    granted = []
    for _ in range(rounds):
        lease = pool.acquire()
        if isinstance(lease, Lease):
            granted.append(lease.key_id)
    results.put(granted)


def test_32_processes_never_exceed_a_limit(redis_client: redis.Redis) -> None:
    seed(redis_client, 3, minute=20)
    results = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=hammer, args=(n, 10, results)) for n in range(32)]
    for worker in workers:
        worker.start()
    grants = [key for _ in workers for key in results.get(timeout=60)]
    for worker in workers:
        worker.join()
    per_key = {key: grants.count(key) for key in set(grants)}
    assert len(grants) == 60 and sorted(per_key.values()) == [20, 20, 20]


def test_lost_ready_set_is_rebuilt(any_redis: redis.Redis) -> None:
    seed(any_redis, 2, minute=1)
    pool = AccountPool(any_redis)
    any_redis.delete(redis_keys.ACCOUNT_READY)
    assert isinstance(pool.acquire(), Lease)
    any_redis.delete(redis_keys.ACCOUNT_READY)
    assert isinstance(pool.acquire(), Lease)
    any_redis.delete(redis_keys.ACCOUNT_READY)
    waiting = pool.acquire()  # both keys used their one request: rebuilt, then parked
    assert isinstance(waiting, NoKeyAvailable) and waiting.reason == "minute limit reached"


# --- flow control: promised slots, learned limits, counting what Gemini counts --------


def test_waiters_are_promised_distinct_slots_in_order(redis_client: redis.Redis) -> None:
    """2 keys × 2/window: two slots free now, then each frees one window after its use;
    waiters beyond a lap get the same moments a window later — never all the same one."""
    seed(redis_client, 2, minute=2)
    pool = AccountPool(redis_client, window_ms=2000)
    assert [pool.promise_slot() for _ in range(2)] == [0, 0]  # free now
    for _ in range(4):
        assert isinstance(pool.acquire(), Lease)  # each grant uses up a due promise
    waits = [pool.promise_slot() for _ in range(6)]  # the 4 grants free 4 slots at 2 s
    window = 2 + SEND_MARGIN_MS / 1000  # what the pool counts: the window and its margin
    assert all(window - 0.5 < wait <= window for wait in waits[:4])
    assert all(2 * window - 0.5 < wait <= 2 * window for wait in waits[4:])  # next lap


def test_no_key_at_all_promises_nothing(redis_client: redis.Redis) -> None:
    assert AccountPool(redis_client).promise_slot() is None


def free_cooldown(client: redis.Redis, key_id: str) -> None:
    """The cooldown Gemini announced is over (without waiting for it)."""
    client.hset(redis_keys.account_info(key_id), mapping={"cooldown_until": 0,
                                                          "announced_until": 0})
    client.zadd(redis_keys.ACCOUNT_READY, {key_id: 0})


def test_a_429_under_the_limit_teaches_the_real_limit(redis_client: redis.Redis) -> None:
    seed(redis_client, 1, minute=10)
    pool = AccountPool(redis_client)
    leases = [pool.acquire() for _ in range(4)]  # Gemini refused the 4th for 30 s: limit 3
    pool.report(leases[-1].key_id, Outcome("minute", "per-minute quota", retry_delay_s=30),
                leases[-1].member)
    account = pool.stats()["accounts"][0]
    assert (account["minute_limit"], account["effective_minute_limit"]) == (10, 3)
    assert 29 < account["cooldown_left_s"] <= 30  # Gemini's own delay
    assert account["learned_limit_left_s"] > 500
    assert account["next_probe_in_s"] == pytest.approx(PROBE_QUIET_MS / 1000, abs=2)
    assert [(c["from"], c["to"]) for c in account["limit_changes"]] == [(10, 3)]
    key_id = leases[0].key_id
    free_cooldown(redis_client, key_id)
    refused = pool.acquire()  # the window holds 3 ≥ the learned 3
    assert isinstance(refused, NoKeyAvailable) and refused.reason == "minute limit reached"
    redis_client.hset(redis_keys.account_info(key_id), "learned_until", 1)  # the lesson expired
    redis_client.zadd(redis_keys.ACCOUNT_READY, {key_id: 0})  # and its parked moment came
    assert isinstance(pool.acquire(), Lease)  # the configured limit is tried again


@pytest.mark.parametrize("delay", [0.0, 0.2, 1.0, 2.0])
def test_a_boundary_429_cools_the_key_and_teaches_nothing(redis_client, delay) -> None:
    """"0s", "0.2s", and the whole seconds Gemini rounds a race at the window's edge up
    to: the key waits out the delay (at least BOUNDARY_COOL_MS) and keeps its limit."""
    seed(redis_client, 1, minute=10)
    pool = AccountPool(redis_client)
    leases = [pool.acquire() for _ in range(4)]
    pool.report(leases[-1].key_id, Outcome("minute", "per-minute quota", retry_delay_s=delay),
                leases[-1].member)
    account = pool.stats()["accounts"][0]
    assert account["effective_minute_limit"] == 10 and account["limit_changes"] == []
    assert account["used_this_minute"] == 3  # the refused request does not count
    waiting = pool.acquire()
    assert isinstance(waiting, NoKeyAvailable) and waiting.reason == "cooling down"
    assert waiting.retry_after_s == pytest.approx(max(delay, BOUNDARY_COOL_MS / 1000), abs=0.1)


def test_a_429_without_retry_info_waits_for_the_pools_window(redis_client) -> None:
    seed(redis_client, 1, minute=10)
    pool = AccountPool(redis_client, window_ms=3000)
    leases = [pool.acquire() for _ in range(3)]
    time.sleep(0.5)
    pool.report(leases[-1].key_id, Outcome("minute", "per-minute quota"), leases[-1].member)
    account = pool.stats()["accounts"][0]
    assert account["effective_minute_limit"] == 10  # no delay given: no evidence
    waiting = pool.acquire()  # until the oldest entry leaves the pool's window
    assert isinstance(waiting, NoKeyAvailable) and 2.2 < waiting.retry_after_s <= 2.7


def test_a_per_day_quota_inside_a_per_minute_burst_parks_until_the_quota_day() -> None:
    from google.genai import errors

    from shared.tagging.gemini import classify
    from tests.gemini_standin import QUOTA, RETRY, error_body
    body = error_body(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.", [
        {"@type": QUOTA, "violations": [
            {"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"},
            {"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
        {"@type": RETRY, "retryDelay": "12s"}])
    assert classify(errors.APIError(429, body)).kind == "day"
    assert classify(errors.APIError(429, error_body(429, "RESOURCE_EXHAUSTED", "x", [
        {"@type": QUOTA, "violations": [{"quotaId": "GenerateRequestsPerMinute"}]}]))
    ).retry_delay_s is None  # no RetryInfo: unknown, not "0s"


def test_a_429_for_a_key_reimported_mid_flight(redis_client: redis.Redis) -> None:
    seed(redis_client, 1, minute=10)
    pool = AccountPool(redis_client)
    leases = [pool.acquire() for _ in range(6)]
    import_accounts(redis_client, [entry(0, minute=4)])  # the operator lowered the limit
    pool.report(leases[-1].key_id, Outcome("minute", "per-minute quota", retry_delay_s=30),
                leases[-1].member)
    account = pool.stats()["accounts"][0]
    assert account["effective_minute_limit"] == 4  # nothing learned above the new limit
    import_accounts(redis_client, [entry(1)], replace=True)  # and now it is gone
    pool.report(leases[0].key_id, Outcome("minute", "per-minute quota", retry_delay_s=30),
                leases[0].member)  # a late report for a removed key changes nothing
    assert not redis_client.exists(redis_keys.account_info(leases[0].key_id))


def _report_race(url: str, key_id: str, member: str, start: float) -> None:
    client = redis.Redis.from_url(url, decode_responses=True)
    while time.time() < start:
        time.sleep(0.001)
    AccountPool(client).report(key_id, Outcome("minute", "race", retry_delay_s=1.0), member)


def test_two_workers_reporting_races_on_one_key_at_once(redis_client: redis.Redis) -> None:
    seed(redis_client, 1, minute=6)
    pool = AccountPool(redis_client)
    leases = [pool.acquire() for _ in range(6)]
    start = time.time() + 0.5
    workers = [multiprocessing.Process(target=_report_race,
                                       args=(REDIS_URL, lease.key_id, lease.member, start))
               for lease in leases[-2:]]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    account = pool.stats()["accounts"][0]
    assert account["effective_minute_limit"] == 6 and account["limit_changes"] == []
    assert account["used_this_minute"] == 4 and 0 < account["cooldown_left_s"] <= 1.0


def test_a_probe_over_the_learned_limit_raises_it_when_accepted(redis_client) -> None:
    """From below: after a quiet period one request more per window; accepted, the limit
    rises by one, and the next probe is a window later; back at the configured limit the
    lesson is gone."""
    seed(redis_client, 1, minute=5)
    pool = AccountPool(redis_client, window_ms=1000)
    key_id = pool.stats()["accounts"][0]["key_id"]
    redis_client.hset(redis_keys.account_info(key_id), mapping={
        "learned_limit": 3, "learned_until": int(time.time() * 1000) + 600_000, "probe_at": 0})
    for expected in (4, 5):
        leases = [pool.acquire() for _ in range(expected)]  # the last is the probe
        assert all(isinstance(lease, Lease) for lease in leases)
        assert isinstance(pool.acquire(), NoKeyAvailable)  # one probe per window
        for lease in leases:
            pool.report(key_id, Outcome.success(), lease.member)
        time.sleep(1.3)  # the next window (and the probe_at a window on)
    account = pool.stats()["accounts"][0]
    assert "learned_limit_left_s" not in account and account["effective_minute_limit"] == 5
    assert [(c["from"], c["to"], c["why"]) for c in reversed(account["limit_changes"])] == [
        (3, 4, "probe accepted"), (4, 5, "probe accepted")]


def test_a_refused_probe_keeps_the_lesson_and_waits_a_quiet_period(redis_client) -> None:
    seed(redis_client, 1, minute=8)
    pool = AccountPool(redis_client)
    key_id = pool.stats()["accounts"][0]["key_id"]
    redis_client.hset(redis_keys.account_info(key_id), mapping={
        "learned_limit": 6, "learned_until": int(time.time() * 1000) + 600_000, "probe_at": 0})
    leases = [pool.acquire() for _ in range(7)]
    assert all(isinstance(lease, Lease) for lease in leases)
    pool.report(key_id, Outcome("minute", "per-minute quota", retry_delay_s=40),
                leases[-1].member)
    account = pool.stats()["accounts"][0]
    assert account["effective_minute_limit"] == 6 and account["limit_changes"] == []
    assert account["next_probe_in_s"] == pytest.approx(PROBE_QUIET_MS / 1000, abs=2)


def test_no_request_goes_out_inside_a_cooldown_gemini_announced(redis_client) -> None:
    seed(redis_client, 1, minute=10)
    pool = AccountPool(redis_client)
    first, second = pool.acquire(), pool.acquire()  # both granted, neither sent yet
    pool.report(first.key_id, Outcome("minute", "per-minute quota", retry_delay_s=30),
                first.member)
    assert pool.stamp_sent(second) is False  # held back: release it, take another key
    free_cooldown(redis_client, second.key_id)
    assert pool.stamp_sent(second) is True


def test_the_send_margin_follows_measured_send_latency(redis_client: redis.Redis) -> None:
    pool = AccountPool(redis_client, window_ms=60_000)
    assert pool.window_ms == 60_000 + SEND_MARGIN_MS  # nothing measured yet
    for _ in range(MIN_SEND_SAMPLES - 1):
        pool.record_send_latency(0.4)
    pool._margin = (SEND_MARGIN_MS, 0.0)  # recompute now
    assert pool.send_margin_ms() == SEND_MARGIN_MS  # too few samples
    pool.record_send_latency(0.4)
    pool._margin = (SEND_MARGIN_MS, 0.0)
    assert pool.send_margin_ms() == 400 + MIN_SEND_MARGIN_MS
    assert AccountPool(redis_client).stats()["send_margin_ms"] == 400 + MIN_SEND_MARGIN_MS
    for _ in range(SEND_SAMPLES):
        pool.record_send_latency(0.001)
    pool._margin = (SEND_MARGIN_MS, 0.0)
    assert pool.send_margin_ms() == 1 + MIN_SEND_MARGIN_MS  # old samples age out
    assert redis_client.llen(redis_keys.ACCOUNT_SEND_LATENCY) == SEND_SAMPLES


def test_boundary_races_raise_the_send_margin(redis_client: redis.Redis) -> None:
    """A boundary 429 is a race the margin lost: each raises it by RACE_STEP_MS."""
    seed(redis_client, 1, minute=10)
    pool = AccountPool(redis_client)
    for _ in range(MIN_SEND_SAMPLES):
        pool.record_send_latency(0.01)
    pool._margin = (SEND_MARGIN_MS, 0.0)
    before = pool.send_margin_ms()
    for _ in range(2):
        lease = pool.acquire()
        pool.report(lease.key_id, Outcome("minute", "race", retry_delay_s=1.0), lease.member)
        free_cooldown(redis_client, lease.key_id)
        pool._margin = (SEND_MARGIN_MS, 0.0)
    assert pool.send_margin_ms() == before + 2 * RACE_STEP_MS
    lease = pool.acquire()  # a real lesson (a long delay) is no race
    pool.report(lease.key_id, Outcome("minute", "quota", retry_delay_s=40), lease.member)
    pool._margin = (SEND_MARGIN_MS, 0.0)
    assert pool.send_margin_ms() == before + 2 * RACE_STEP_MS


def test_sent_request_is_counted_when_it_leaves(redis_client: redis.Redis) -> None:
    seed(redis_client, 1, minute=1)
    pool = AccountPool(redis_client, window_ms=1000)
    lease = pool.acquire()
    time.sleep(0.6)
    pool.stamp_sent(lease)  # the upload took 0.6 s: Gemini sees the request now
    time.sleep(0.5)  # 1.1 s after the grant, 0.5 s after sending
    refused = pool.acquire()
    assert isinstance(refused, NoKeyAvailable)
    assert 0.3 < refused.retry_after_s <= 0.5 + SEND_MARGIN_MS / 1000
