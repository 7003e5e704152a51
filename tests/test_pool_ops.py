"""Key pool operations (issue 25): checks on import, health probes of disabled keys,
per-key history and its routes, pool alerts — against real Redis and the Gemini stand-in."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import functions_framework
import pytest
import redis

from scripts.stack import ROOT
from shared import redis_keys
from shared.accounts import history
from shared.accounts.checks import KeyChecker
from shared.accounts.importer import (
    AccountEntry,
    ImportRefused,
    check_keys,
    import_accounts,
    load_accounts,
)
from shared.accounts.pool import AccountPool, Lease, Outcome, account_id
from shared.accounts.probes import KeyProber, heal_class
from shared.app.pool_alerts import run_alerts
from shared.app.pool_jobs import keys_job, watch_pool
from shared.config import ConfigError
from shared.queue.local_consumer import Consumer, ConsumerConfig
from shared.queue.redis_queue import RedisQueue
from shared.services import build_services
from tests.conftest import REDIS_URL
from tests.gemini_standin import GeminiStandIn

MODEL = "gemini-2.5-flash"


def account(name: str, **changes) -> dict:
    return {"api_key": f"AIzaSyOPS{name:0>30}", "daily_limit": 100, "minute_limit": 5,
            "username": f"user-{name}", "password": "hunter2-pw", "phone": "+1555",
            "email": f"{name}@example.com", **changes}


def key_of(name: str) -> str:
    return account(name)["api_key"]


def id_of(name: str) -> str:
    return account_id(key_of(name))


def imported(client: redis.Redis, *names: str) -> AccountPool:
    import_accounts(client, [AccountEntry(**account(name)) for name in names])
    return AccountPool(client)


@pytest.fixture
def standin():
    server = GeminiStandIn(slow_s=2.0).start()
    yield server
    server.stop()


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/import_accounts.py", *args], cwd=ROOT,
                          env={**os.environ, "REDIS_URL": REDIS_URL, "PYTHONPATH": str(ROOT),
                               **env},
                          capture_output=True, text=True, timeout=120)


# --- 1. the accounts file --------------------------------------------------------------


def test_every_error_of_a_file_is_reported_at_once_with_its_line(
        tmp_path: Path, redis_client: redis.Redis) -> None:
    bad = [account("a", daily_limit=0), account("b"),
           {k: v for k, v in account("c").items() if k != "api_key"}, "text",
           account("e", minute_limit="five", username="")]
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps(bad, indent=2))
    with pytest.raises(ImportRefused) as caught:
        load_accounts(path)
    message = str(caught.value)
    for expected in ("5 problems", "entry 1 (line 2): daily_limit: must be a positive integer",
                     "entry 3 (line 20): api_key: is required",
                     "entry 4 (line 28): must be an object",
                     "entry 5 (line 29): minute_limit: must be a positive integer",
                     "entry 5 (line 29): username: "):
        assert expected in message, expected
    assert "entry 2" not in message and "hunter2" not in message
    run = run_cli("--file", str(path))
    assert run.returncode == 2 and "entry 3 (line 20): api_key: is required" in run.stderr
    assert "entry 1 (line 2)" in run.stderr and redis_client.dbsize() == 0


def test_a_bom_and_crlf_line_ends_are_accepted(tmp_path: Path,
                                               redis_client: redis.Redis) -> None:
    path = tmp_path / "windows.json"
    text = json.dumps([account("a"), account("b")], indent=2).replace("\n", "\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert [entry.username for entry in load_accounts(path)] == ["user-a", "user-b"]
    broken = tmp_path / "broken.json"
    broken.write_bytes(b"\xef\xbb\xbf" + text.replace('"user-b"', '""').encode())
    with pytest.raises(ImportRefused, match=r"entry 2 \(line 11\): username"):
        load_accounts(broken)
    run = run_cli("--file", str(path))
    assert run.returncode == 0 and "2 added" in run.stdout


def test_a_key_listed_twice_is_imported_once_with_a_warning(
        tmp_path: Path, redis_client: redis.Redis) -> None:
    path = tmp_path / "twice.json"
    path.write_text(json.dumps([account("a"), account("b"), account("a", daily_limit=7)],
                               indent=2))
    warnings: list[str] = []
    entries = load_accounts(path, warnings)
    assert [e.username for e in entries] == ["user-a", "user-b"]
    assert len(warnings) == 1 and "entry 3 (line 20)" in warnings[0]
    assert "repeats entry 1" in warnings[0] and key_of("a") not in warnings[0]
    run = run_cli("--file", str(path))
    assert run.returncode == 0 and "2 added" in run.stdout
    assert "warning:" in run.stderr and "repeats entry 1" in run.stderr
    assert redis_client.scard(redis_keys.ACCOUNT_IDS) == 2


# --- 1. checks on import ---------------------------------------------------------------

BEHAVIOURS = {"ok": "ok", "bad": "invalid", "susp": "suspended_info", "region": "region",
              "busy": "minute", "slow": "slow"}
VERDICTS = {"ok": "valid", "bad": "invalid", "susp": "suspended",
            "region": "region-refused", "busy": "valid", "slow": "unreachable"}


def _checked_file(tmp_path: Path, standin: GeminiStandIn) -> Path:
    standin.behaviours.update({key_of(name): b for name, b in BEHAVIOURS.items()})
    path = tmp_path / "checked.json"
    path.write_text(json.dumps([account(name) for name in BEHAVIOURS], indent=2))
    return path


def test_check_reports_each_key_and_imports_the_valid_ones(
        tmp_path: Path, redis_client: redis.Redis, standin: GeminiStandIn) -> None:
    path = _checked_file(tmp_path, standin)
    run = run_cli("--file", str(path), "--check", GEMINI_BASE_URL=standin.base_url,
                  GEMINI_MODEL=MODEL, POOL_PROBE_TIMEOUT_S="0.5")
    assert run.returncode == 0, run.stderr
    lines = {line.split()[2]: line for line in run.stdout.splitlines() if "user-" in line}
    for name, verdict in VERDICTS.items():
        assert f"  {verdict}" in lines[f"user-{name}"], (name, lines[f"user-{name}"])
    assert "skipped" in lines["user-bad"] and "added" in lines["user-ok"]
    assert "2 added, 0 updated, 0 removed, 4 skipped" in run.stdout
    assert set(redis_client.smembers(redis_keys.ACCOUNT_IDS)) == {id_of("ok"), id_of("busy")}
    # one free call per key, never a generateContent; the key itself never printed
    gets = standin.model_gets()
    assert len(gets) == len(BEHAVIOURS) and not standin.generate_calls()
    assert all(r.path == f"/v1/models/{MODEL}" for r in gets)
    assert "AIzaSyOPS" not in run.stdout + run.stderr


def test_keep_invalid_imports_all_and_disables_the_bad_ones_with_the_reason(
        tmp_path: Path, redis_client: redis.Redis, standin: GeminiStandIn) -> None:
    path = _checked_file(tmp_path, standin)
    checks = check_keys(load_accounts(path), KeyChecker(MODEL, standin.base_url, 0.5))
    rows = import_accounts(redis_client, load_accounts(path), checks=checks,
                           keep_invalid=True)
    assert sorted(r.action for r in rows) == ["added"] * 6
    status = {name: redis_client.hgetall(redis_keys.account_info(id_of(name)))
              for name in BEHAVIOURS}
    assert status["ok"]["status"] == status["busy"]["status"] == "active"
    assert status["bad"]["disabled_reason"] == "API_KEY_INVALID"
    assert "CONSUMER_SUSPENDED" in status["susp"]["disabled_reason"]
    assert status["region"]["disabled_reason"].startswith("region refused")
    assert status["slow"]["disabled_reason"] == "unreachable: timed out"
    assert all(s["status"] == "disabled" for n, s in status.items() if n not in ("ok", "busy"))
    assert key_of("susp") not in json.dumps(status["susp"]["last_error"])
    assert run_cli("--file", str(path), "--keep-invalid").returncode == 2  # needs --check


# --- 2. health probes ------------------------------------------------------------------


def _disable(pool: AccountPool, name: str, reason: str) -> None:
    pool.report(id_of(name), Outcome("disabled", reason))


def test_probes_bring_back_keys_that_healed_but_never_an_operators(
        redis_client: redis.Redis, standin: GeminiStandIn) -> None:
    pool = imported(redis_client, "susp", "region", "busy", "hand", "bad", "still")
    _disable(pool, "susp", "HTTP 403 PERMISSION_DENIED (CONSUMER_SUSPENDED)")
    _disable(pool, "region", "region refused: HTTP 400 FAILED_PRECONDITION")
    _disable(pool, "busy", "HTTP 403 PERMISSION_DENIED: denied")
    _disable(pool, "bad", "API_KEY_INVALID")
    _disable(pool, "still", "HTTP 403 PERMISSION_DENIED (CONSUMER_SUSPENDED)")
    pool.set_enabled(id_of("hand"), False)
    standin.behaviours.update({key_of("busy"): "minute", key_of("bad"): "invalid",
                               key_of("still"): "suspended_info"})
    run = KeyProber(pool, KeyChecker(MODEL, standin.base_url, 2.0)).run().as_dict()
    assert sorted(run["enabled"]) == sorted([id_of("susp"), id_of("region"), id_of("busy")])
    probed = {o["key_id"] for o in run["outcomes"]}
    assert id_of("hand") not in probed and len(probed) == 5
    info = {n: redis_client.hgetall(redis_keys.account_info(id_of(n)))
            for n in ("susp", "busy", "hand", "bad", "still")}
    assert info["susp"]["status"] == "active" and info["susp"]["disabled_reason"] == ""
    assert info["busy"]["status"] == "active"  # a 429 says the key works
    assert info["hand"]["status"] == "disabled"
    assert info["bad"]["status"] == info["still"]["status"] == "disabled"
    leased = {pool.acquire().key_id for _ in range(3)}
    assert leased == {id_of("susp"), id_of("region"), id_of("busy")}
    # API_KEY_INVALID at most once a day; the suspended one at every run
    before = len(standin.model_gets())
    again = KeyProber(pool, KeyChecker(MODEL, standin.base_url, 2.0)).run().as_dict()
    assert [o["key_id"] for o in again["outcomes"]] == [id_of("still")]
    assert len(standin.model_gets()) == before + 1
    # each probe is in the key's history
    record = history.key_history(pool, id_of("still"), 1)
    assert record["days"][-1]["probes"] == 2 and record["days"][-1]["probes_ok"] == 0
    assert record["probes"][0]["verdict"] == "suspended" and not record["probes"][0]["enabled"]
    assert key_of("still") not in json.dumps(record)
    healed = history.key_history(pool, id_of("busy"), 1)
    assert healed["days"][-1]["probes_ok"] == 1 and healed["probes"][0]["enabled"]


def test_a_probe_that_times_out_keeps_the_key_disabled(
        redis_client: redis.Redis, standin: GeminiStandIn) -> None:
    pool = imported(redis_client, "slow")
    _disable(pool, "slow", "HTTP 403 PERMISSION_DENIED (CONSUMER_SUSPENDED)")
    standin.behaviours[key_of("slow")] = "slow"
    started = time.monotonic()
    run = KeyProber(pool, KeyChecker(MODEL, standin.base_url, 0.3)).run().as_dict()
    assert time.monotonic() - started < 1.8  # the probe's time limit, not the server's
    assert run["enabled"] == [] and run["outcomes"][0]["verdict"] == "unreachable"
    assert run["outcomes"][0]["detail"] == "timed out"
    info = redis_client.hgetall(redis_keys.account_info(id_of("slow")))
    assert info["status"] == "disabled"
    assert info["disabled_reason"] == "HTTP 403 PERMISSION_DENIED (CONSUMER_SUSPENDED)"
    assert history.key_history(pool, id_of("slow"), 1)["probes"][0]["verdict"] == "unreachable"


def test_two_processes_probing_at_once_make_one_probe(
        redis_client: redis.Redis, standin: GeminiStandIn) -> None:
    pool = imported(redis_client, "slow")
    _disable(pool, "slow", "HTTP 403 PERMISSION_DENIED (CONSUMER_SUSPENDED)")
    standin.behaviours[key_of("slow")] = "slow"
    standin.slow_s = 1.0
    results: list[dict] = []

    def probe() -> None:  # each its own client and prober, as two processes would have
        own = AccountPool(redis.Redis.from_url(REDIS_URL, decode_responses=True))
        results.append(KeyProber(own, KeyChecker(MODEL, standin.base_url, 5.0)).run()
                       .as_dict())

    threads = [threading.Thread(target=probe) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert sorted(r["ran"] for r in results) == [False, True]
    assert "another process" in next(r for r in results if not r["ran"])["skipped"]
    assert len(standin.model_gets()) == 1
    assert not redis_client.exists(redis_keys.ACCOUNT_PROBE_LOCK)  # released after the run


def test_heal_classes() -> None:
    assert heal_class("disabled by an operator") == "never"
    assert heal_class("API_KEY_INVALID") == "daily"
    assert heal_class("HTTP 401 UNAUTHENTICATED: no") == "daily"
    for reason in ("HTTP 403 PERMISSION_DENIED (CONSUMER_SUSPENDED)", "region refused: x",
                   "unreachable: timed out", "3 failures in a row"):
        assert heal_class(reason) == "scheduled"


def test_cleanup_with_scope_keys_probes(app_env, redis_client: redis.Redis,
                                        standin: GeminiStandIn) -> None:
    app_env(GEMINI_BASE_URL=standin.base_url, GEMINI_MODEL=MODEL)
    pool = imported(redis_client, "susp")
    _disable(pool, "susp", "HTTP 403 PERMISSION_DENIED (CONSUMER_SUSPENDED)")
    client = functions_framework.create_app("cleanup", "main.py").test_client()
    answer = client.post("/?scope=keys").get_json()
    assert answer["code"] == 200, answer
    assert answer["data"]["keys"]["probes"]["enabled"] == [id_of("susp")]
    assert "stuck_tasks" not in answer["data"]
    assert client.post("/?scope=nope").get_json()["message"] == \
        "scope: must be all, tasks, keys, batches, retention or embeddings"
    minute = client.post("/?scope=tasks").get_json()["data"]
    assert minute["keys"]["capacity"]["usable_keys"] == 1 and "stuck_tasks" in minute


def test_the_consumer_runs_the_periodic_jobs_beside_deliveries(
        redis_client: redis.Redis) -> None:
    calls: list[float] = []

    def slow_job() -> None:
        calls.append(time.monotonic())
        time.sleep(0.2)

    consumer = Consumer(RedisQueue(redis_client),
                        ConsumerConfig(worker_url="http://127.0.0.1:9/", reap_interval_s=0,
                                       max_idle_s=0.05),
                        jobs=[("job", 0.1, slow_job), ("broken", 0.1, lambda: 1 / 0)])
    runner = threading.Thread(target=consumer.run)
    runner.start()
    time.sleep(1.0)
    consumer.stop()
    runner.join(5)
    assert not runner.is_alive() and len(calls) >= 3  # a failing job stops no other


# --- 3. history ------------------------------------------------------------------------


def test_history_counts_every_answer_per_quota_day(redis_client: redis.Redis) -> None:
    pacific = ZoneInfo("America/Los_Angeles")
    late = datetime(2026, 3, 1, 23, 59, tzinfo=pacific)  # 07:59 UTC the next day
    pool = AccountPool(redis_client, clock=lambda: late)
    import_accounts(redis_client, [AccountEntry(**account(n)) for n in ("a", "b")])
    a, b = id_of("a"), id_of("b")
    for outcome in (Outcome.success(), Outcome.success(), Outcome("minute", "x", 41.0),
                    Outcome("tokens", "t", 3.0), Outcome("day", "d"),
                    Outcome("failure", "f"), Outcome("neutral", "n")):
        pool.report(a, outcome)
    pool.report(b, Outcome.success())
    lease = Lease(key_id=a, api_key=key_of("a"), member="m", day="2026-03-01")
    pool.record_usage(lease, 1000, 200, 0.0125)
    day = history.key_history(pool, a, 3)["days"]
    assert [d["day"] for d in day] == ["2026-02-27", "2026-02-28", "2026-03-01"]
    assert day[-1] == {"day": "2026-03-01", "requests": 7,
                       "429s": {"minute": 1, "tokens": 1, "day": 1}, "errors": 2,
                       "input_tokens": 1000, "output_tokens": 200, "cost_usd": 0.0125,
                       "probes": 0, "probes_ok": 0}
    assert day[0]["requests"] == 0
    totals = history.pool_history(pool, 1)
    assert totals["keys"] == 2 and totals["days"][0]["requests"] == 8
    minute = totals["last_hour"][-1]
    assert len(totals["last_hour"]) == 60 and minute["requests"] == 8 and minute["429s"] == 3
    assert 0 < redis_client.ttl(redis_keys.account_usage(a)) <= redis_keys.HISTORY_TTL_S
    assert redis_client.ttl(redis_keys.account_usage(a)) > 35 * 86400
    assert history.key_history(pool, "0" * 16, 3) is None


def test_prune_keeps_35_days(redis_client: redis.Redis) -> None:
    pool = imported(redis_client, "a")
    name = redis_keys.account_usage(id_of("a"))
    days = history.quota_days(pool, 40)
    for day in days:
        redis_client.hset(name, f"{day}:requests", 1)
    assert history.prune(pool) == 5
    assert sum(d["requests"] for d in history.key_history(pool, id_of("a"), 35)["days"]) == 35


def test_history_routes(app_env, redis_client: redis.Redis) -> None:
    app_env(API_TOKENS="t")
    pool = imported(redis_client, "a")
    pool.report(id_of("a"), Outcome.success())
    client = functions_framework.create_app("api", "main.py").test_client()
    auth = {"Authorization": "Bearer t"}
    assert client.get("/api/v1/accounts/history").status_code == 401
    one = client.get(f"/api/v1/accounts/{id_of('a')}/history?days=2", headers=auth).get_json()
    assert one["code"] == 200 and len(one["data"]["days"]) == 2
    assert one["data"]["days"][-1]["requests"] == 1
    whole = client.get("/api/v1/accounts/history", headers=auth).get_json()["data"]
    assert len(whole["days"]) == 30 and whole["days"][-1]["requests"] == 1
    assert len(whole["last_hour"]) == 60 and whole["last_hour"][-1]["capacity"] == 5
    unknown = client.get(f"/api/v1/accounts/{'0' * 16}/history", headers=auth)
    assert unknown.status_code == 404 and "no key" in unknown.get_json()["message"]
    malformed = client.get("/api/v1/accounts/xyz/history", headers=auth).get_json()
    assert malformed["code"] == 400 and malformed["message"].startswith("key_id: malformed")
    for query in ("days=0", "days=400", "days=abc", "days=1&days=2", "other=1"):
        for path in ("/api/v1/accounts/history", f"/api/v1/accounts/{id_of('a')}/history"):
            answer = client.get(f"{path}?{query}", headers=auth).get_json()
            assert answer["code"] == 400, (path, query)
            assert answer["message"].split(":")[0] in ("days", "other"), answer["message"]
    assert "35" in client.get("/api/v1/accounts/history?days=400",
                              headers=auth).get_json()["message"]
    document = client.get("/api/v1/openapi.json").get_json()
    assert {"/api/v1/accounts/history", "/api/v1/accounts/{key_id}/history"} <= set(
        document["paths"])


# --- 4. alerts -------------------------------------------------------------------------


def _signed(headers: dict, body: bytes, secret: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers.get("X-Signature", ""))


def _alert_services(make_settings, url: str, **more):
    return build_services(make_settings(POOL_ALERT_URL=url, POOL_ALERT_SECRET="s3cret",
                                        POOL_ALERT_BELOW=0.5, POOL_ALERT_REPEAT_S=60,
                                        CALLBACK_TIMEOUT_S=1, **more))


def _events(receiver) -> list[dict]:
    return [json.loads(body) for _, body in receiver.received]


def test_alerts_once_per_change_repeated_and_recovered(
        redis_client: redis.Redis, make_settings, receiver_factory) -> None:
    receiver = receiver_factory([])
    services = _alert_services(make_settings, receiver.url)
    pool = imported(redis_client, "a", "b", "c")
    assert watch_pool(services)["alerts"]["active"] == []
    _disable(pool, "a", "HTTP 403 PERMISSION_DENIED (CONSUMER_SUSPENDED)")
    _disable(pool, "b", "API_KEY_INVALID")
    first = watch_pool(services)["alerts"]
    assert sorted(first["sent"]) == sorted(
        ["low_minute", "low_today", f"key_disabled:{id_of('a')}", f"key_disabled:{id_of('b')}"])
    events = _events(receiver)
    assert all(_signed(h, body, "s3cret") for h, body in receiver.received)
    disabled = next(e for e in events if e.get("key_id") == id_of("b"))
    assert disabled["state"] == "alert" and disabled["reason"] == "API_KEY_INVALID"
    low = next(e for e in events if e["condition"] == "low_minute")
    assert low["fraction"] == round(5 / 15, 4) and low["pool"]["usable_keys"] == 1
    assert "AIzaSyOPS" not in json.dumps(events)
    watch_pool(services)  # nothing changed: nothing sent
    assert len(receiver.received) == 4
    _disable(pool, "c", "HTTP 403 PERMISSION_DENIED: denied")
    watch_pool(services)
    newest = _events(receiver)[4:]
    assert {e["condition"] for e in newest} == {"pool_unusable", "key_disabled",
                                                "low_minute", "low_today"}
    recovered = {e["condition"] for e in newest if e["state"] == "recovered"}
    assert recovered == {"low_minute", "low_today"}  # said as `pool_unusable` now
    # a condition that lasts is repeated after POOL_ALERT_REPEAT_S
    state = json.loads(redis_client.hget(redis_keys.POOL_ALERT_STATE, "pool_unusable"))
    redis_client.hset(redis_keys.POOL_ALERT_STATE, "pool_unusable",
                      json.dumps({**state, "sent_at": state["sent_at"] - 61}))
    repeated = watch_pool(services)["alerts"]["sent"]
    assert repeated == ["pool_unusable"] and _events(receiver)[-1]["repeat"] is True
    for name in ("a", "b", "c"):
        pool.set_enabled(id_of(name), True)
    back = watch_pool(services)["alerts"]
    assert back["active"] == [] and len(back["sent"]) == 4
    assert {e["state"] for e in _events(receiver)[-4:]} == {"recovered"}
    assert redis_client.hlen(redis_keys.POOL_ALERT_STATE) == 0


def test_an_alert_that_fails_is_retried_and_never_blocks(
        redis_client: redis.Redis, make_settings, receiver_factory) -> None:
    receiver = receiver_factory([503] * 6)
    services = _alert_services(make_settings, receiver.url)
    pool = imported(redis_client, "a")
    _disable(pool, "a", "API_KEY_INVALID")
    first = watch_pool(services)["alerts"]
    assert first["sent"] == [] and sorted(first["failed"]) == ["key_disabled:" + id_of("a"),
                                                                "pool_unusable"]
    second = watch_pool(services)["alerts"]  # the next run delivers what failed
    assert sorted(second["sent"]) == sorted(first["failed"]) and second["failed"] == []
    assert len(receiver.received) == 2 * 3 + 2


def test_an_alert_url_that_redirects_or_is_private_is_refused(
        redis_client: redis.Redis, make_settings, receiver_factory) -> None:
    target = receiver_factory([])
    redirecting = receiver_factory([(302, {"Location": target.url})] * 4)
    pool = imported(redis_client, "a")
    _disable(pool, "a", "API_KEY_INVALID")
    stats = pool.stats()
    capacity = history.usable_capacity(stats)
    result = run_alerts(_alert_services(make_settings, redirecting.url), stats, capacity)
    assert result["sent"] == [] and len(result["failed"]) == 2
    assert len(redirecting.received) == 2 and target.received == []  # 3xx: not followed
    redis_client.delete(redis_keys.POOL_ALERT_STATE)
    private = _alert_services(make_settings, target.url, ALLOW_PRIVATE_URLS=False)
    result = run_alerts(private, stats, capacity)
    assert result["sent"] == [] and len(result["failed"]) == 2 and target.received == []
    with pytest.raises(ConfigError, match="POOL_ALERT_URL"):
        make_settings(POOL_ALERT_URL="ftp://example.com/x")


def test_keys_job_without_keys_or_alert_url_does_nothing(
        redis_client: redis.Redis, make_settings) -> None:
    services = build_services(make_settings())
    assert keys_job(services) == {"keys": 0}
    imported(redis_client, "a")
    assert watch_pool(services)["alerts"] == {"configured": False}


def test_probes_skip_an_endpoint_that_is_backing_off(
        redis_client: redis.Redis, make_settings, standin: GeminiStandIn) -> None:
    from shared.tagging.health import GeminiHealth

    dead = "http://127.0.0.1:9"
    services = build_services(make_settings(GEMINI_BASE_URL=f"{dead},{standin.base_url}",
                                            GEMINI_MODEL=MODEL))
    pool = imported(redis_client, "susp")
    _disable(pool, "susp", "HTTP 403 PERMISSION_DENIED (CONSUMER_SUSPENDED)")
    GeminiHealth(redis_client).endpoint_failed(dead, "region")
    assert keys_job(services)["probes"]["enabled"] == [id_of("susp")]
    assert len(standin.model_gets()) == 1
