"""scripts/import_accounts.py and the importer: whole-file validation, the lock, the swap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import functions_framework
import pytest
import redis

from scripts.stack import ROOT
from shared import redis_keys
from shared.accounts.importer import (
    DEFAULT_DAILY_LIMIT,
    DEFAULT_MINUTE_LIMIT,
    ImportRefused,
    import_accounts,
    load_accounts,
)
from shared.accounts.pool import AccountPool, Lease, NoKeyAvailable, Outcome, account_id
from tests.conftest import REDIS_URL
from tests.gemini_standin import GeminiStandIn


def account(n: int, **changes) -> dict:
    return {"api_key": f"AIzaSyIMPORT{n:028d}", "daily_limit": 100, "minute_limit": 5,
            "username": f"user{n}", "password": "hunter2-pw", "phone": "+1555", "email":
            f"u{n}@example.com", **changes}


def write(tmp_path: Path, data, name: str = "accounts.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return path


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    """The script on this checkout's code (PYTHONPATH: not an installed copy's)."""
    env = {**os.environ, "REDIS_URL": REDIS_URL, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "scripts/import_accounts.py", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("data", "message"), [
    ("{not json", "not JSON (line 1"),
    ({"api_key": "x"}, "must be a JSON list"),
    ([], "the list is empty"),
    ([account(1), "text"], "entry 2 (line 11): must be an object"),
    ([account(1), {k: v for k, v in account(2).items() if k != "api_key"}],
     "entry 2 (line 11): api_key: is required"),
    ([account(1, apikey="AIzaSyIMPORT-hunter2")], "unknown field apikey (did you mean api_key?)"),
    ([account(2, minute_limt=50)], "unknown field minute_limt (did you mean minute_limit?)"),
    ([account(1, colour="red")], "unknown field colour (known: api_key, daily_limit, "),
    ([account(1, daily_limit=0)], "daily_limit: must be a positive integer (got 0)"),
    ([account(1, minute_limit=-1)], "minute_limit: must be a positive integer (got -1)"),
    ([account(1, daily_limit="ten")], "daily_limit: must be a positive integer (got 'ten')"),
    ([account(1, minute_limit=1.5)], "minute_limit: must be a positive integer (got 1.5)"),
    ([account(1, daily_limit=True)], "daily_limit: must be a positive integer (got True)"),
    ([account(1, password="")], "password: "),
])
def test_bad_files_are_refused_whole(tmp_path: Path, redis_client: redis.Redis, data,
                                     message: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(ImportRefused) as caught:
        load_accounts(path)
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)
    run = run_cli("--file", str(path))
    assert run.returncode == 2 and message in run.stderr
    assert redis_client.dbsize() == 0


def test_a_file_of_bare_keys_is_imported_with_the_default_limits(
        tmp_path: Path, redis_client: redis.Redis) -> None:
    path = write(tmp_path, [{"api_key": account(1)["api_key"]},
                            {"api_key": account(2)["api_key"], "minute_limit": 30}])
    run = run_cli("--file", str(path))
    assert run.returncode == 0, run.stderr
    assert "2 added" in run.stdout
    first = redis_client.hgetall(redis_keys.account_info(account_id(account(1)["api_key"])))
    second = redis_client.hgetall(redis_keys.account_info(account_id(account(2)["api_key"])))
    assert (first["quota_daily"], first["minute_limit"]) == (str(DEFAULT_DAILY_LIMIT),
                                                             str(DEFAULT_MINUTE_LIMIT))
    assert second["minute_limit"] == "30" and first["status"] == "active"
    assert not {"username", "phone", "email", "password"} & set(first)


def test_an_unknown_field_is_named_with_what_was_meant_not_dropped(
        tmp_path: Path, redis_client: redis.Redis) -> None:
    """`minute_limt` once gave the key the default limit without a word."""
    path = write(tmp_path, [{"api_key": account(1)["api_key"], "minute_limt": 50},
                            {"apikey": account(2)["api_key"]}])
    with pytest.raises(ImportRefused) as caught:
        load_accounts(path)
    assert str(caught.value).splitlines()[1:] == [
        "  entry 1 (line 2): unknown field minute_limt (did you mean minute_limit?)",
        "  entry 2 (line 6): unknown field apikey (did you mean api_key?)"]
    assert account(2)["api_key"] not in str(caught.value)
    run = run_cli("--file", str(path))
    assert run.returncode == 2 and "did you mean minute_limit?" in run.stderr
    assert redis_client.dbsize() == 0


def test_check_with_every_key_unreachable_writes_nothing_and_exits_5(
        tmp_path: Path, redis_client: redis.Redis) -> None:
    import_accounts(redis_client, load_accounts_list([account(9)]))
    standin = GeminiStandIn(slow_s=2.0).start()
    try:
        standin.behaviours.update({account(n)["api_key"]: "slow" for n in (1, 2)})
        run = run_cli("--file", str(write(tmp_path, [account(1), account(2)])), "--check",
                      "--replace", GEMINI_BASE_URL=standin.base_url,
                      GEMINI_MODEL="gemini-2.5-flash", POOL_PROBE_TIMEOUT_S="0.5")
    finally:
        standin.stop()
    assert run.returncode == 5, run.stdout + run.stderr
    assert "0 added, 0 updated, 0 removed, 2 skipped" in run.stdout
    assert "Gemini could not be reached for any key" in run.stderr
    assert "nothing was written" in run.stderr
    assert redis_client.smembers(redis_keys.ACCOUNT_IDS) == {
        account_id(account(9)["api_key"])}  # --replace did not empty the pool


def test_missing_and_oversized_files(tmp_path: Path) -> None:
    with pytest.raises(ImportRefused, match="no such file"):
        load_accounts(tmp_path / "nope.json")
    big = tmp_path / "big.json"
    big.write_text("[" + " " * (10 * 1024 * 1024) + "]")
    with pytest.raises(ImportRefused, match="over the limit"):
        load_accounts(big)


def test_import_writes_no_password_and_prints_a_table(tmp_path: Path,
                                                      redis_client: redis.Redis) -> None:
    run = run_cli("--file", str(write(tmp_path, [account(1), account(2)])))
    assert run.returncode == 0, run.stderr
    assert "AIza…0001" in run.stdout and "2 added, 0 updated, 0 removed" in run.stdout
    assert "hunter2" not in run.stdout + run.stderr
    assert "AIzaSyIMPORT" not in run.stdout
    for key in redis_client.scan_iter("*"):
        kind = redis_client.type(key)
        values = redis_client.hgetall(key) if kind == "hash" else {}
        assert "hunter2-pw" not in json.dumps(values)
        assert "password" not in values
    info = redis_client.hgetall(redis_keys.account_info(account_id(account(1)["api_key"])))
    assert info["status"] == "active" and info["quota_daily"] == "100"


def test_dry_run_writes_nothing(tmp_path: Path, redis_client: redis.Redis) -> None:
    run = run_cli("--file", str(write(tmp_path, [account(1)])), "--dry-run")
    assert run.returncode == 0 and "nothing was written" in run.stdout
    assert redis_client.dbsize() == 0


def test_reimport_keeps_usage_and_replace_removes(tmp_path: Path,
                                                  redis_client: redis.Redis) -> None:
    first = [load_accounts(write(tmp_path, [account(1), account(2)]))][0]
    import_accounts(redis_client, first)
    pool = AccountPool(redis_client)
    for _ in range(4):
        pool.acquire()
    changed = load_accounts(write(tmp_path, [account(1, daily_limit=500), account(3)], "b.json"))
    rows = import_accounts(redis_client, changed, replace=True)
    assert sorted((r.username, r.action) for r in rows) == [
        ("user1", "updated"), ("user2", "removed"), ("user3", "added")]
    stats = {a["username"]: a for a in pool.stats()["accounts"]}
    assert set(stats) == {"user1", "user3"}
    assert stats["user1"]["used_today"] == 2 and stats["user1"]["quota_daily"] == 500
    assert not redis_client.exists(redis_keys.account_daily(account_id(account(2)["api_key"])))


def test_second_import_while_one_runs_is_refused(tmp_path: Path,
                                                 redis_client: redis.Redis) -> None:
    redis_client.set(redis_keys.ACCOUNT_IMPORT_LOCK, "other-import", ex=30)
    run = run_cli("--file", str(write(tmp_path, [account(1)])))
    assert run.returncode == 3 and "another import is running" in run.stderr
    assert redis_client.scard(redis_keys.ACCOUNT_IDS) == 0


def test_accounts_route_shows_masked_stats(app_env, tmp_path: Path,
                                           redis_client: redis.Redis) -> None:
    import_accounts(redis_client, load_accounts(write(tmp_path, [account(1)])))
    client = functions_framework.create_app("api", "main.py").test_client()
    body = client.get("/api/v1/accounts")
    data = body.get_json()["data"]
    assert body.status_code == 200 and data["accounts"][0]["key"] == "AIza…0001"
    assert data["totals"]["capacity_left_today"] == 100
    assert "AIzaSyIMPORT" not in body.get_data(as_text=True)
    app_env(API_TOKENS="t")
    locked = functions_framework.create_app("api", "main.py").test_client()
    assert locked.get("/api/v1/accounts").status_code == 401


# --- key administration: enable / disable, hand edits, limits changed by re-import -------


def _disabled_key(redis_client: redis.Redis) -> tuple[AccountPool, str]:
    import_accounts(redis_client, load_accounts_list([account(1)]))
    pool = AccountPool(redis_client)
    key_id = account_id(account(1)["api_key"])
    pool.report(key_id, Outcome("disabled", "HTTP 403 PERMISSION_DENIED"))
    assert isinstance(pool.acquire(), NoKeyAvailable)
    return pool, key_id


def load_accounts_list(items: list[dict]):
    from shared.accounts.importer import AccountEntry

    return [AccountEntry(**item) for item in items]


def test_enable_and_disable_by_api(app_env, redis_client: redis.Redis) -> None:
    app_env(API_TOKENS="admin-token")
    pool, key_id = _disabled_key(redis_client)
    client = functions_framework.create_app("api", "main.py").test_client()
    auth = {"Authorization": "Bearer admin-token"}
    assert client.post(f"/api/v1/accounts/{key_id}/enable").status_code == 401
    enabled = client.post(f"/api/v1/accounts/{key_id}/enable", headers=auth).get_json()
    assert enabled["code"] == 200 and enabled["data"]["status"] == "active"
    assert isinstance(pool.acquire(), Lease)
    disabled = client.post(f"/api/v1/accounts/{key_id}/disable", headers=auth).get_json()
    assert disabled["data"]["disabled_reason"] == "disabled by an operator"
    assert isinstance(pool.acquire(), NoKeyAvailable)
    assert client.post(f"/api/v1/accounts/{'0' * 16}/enable", headers=auth).status_code == 404
    for bad in ("xyz", "A" * 16, "0" * 17, "0" * 5000):
        answer = client.post(f"/api/v1/accounts/{bad}/enable", headers=auth).get_json()
        assert answer["code"] == 400 and answer["message"].startswith("key_id: malformed")
    assert client.post(f"/api/v1/accounts/{key_id}/delete", headers=auth).status_code == 404
    assert client.get(f"/api/v1/accounts/{key_id}/enable", headers=auth).status_code == 405


def test_enable_and_disable_by_script(redis_client: redis.Redis) -> None:
    pool, key_id = _disabled_key(redis_client)
    done = run_cli("--enable", key_id)
    assert done.returncode == 0 and "enabled" in done.stdout
    assert isinstance(pool.acquire(), Lease)
    assert run_cli("--disable", key_id).returncode == 0
    assert isinstance(pool.acquire(), NoKeyAvailable)
    assert run_cli("--enable", "0" * 16).returncode == 4
    assert run_cli("--enable", "../etc").returncode == 2
    assert run_cli("--enable", key_id, "--file", "x.json").returncode == 2  # one action


def test_status_edited_by_hand_is_honoured(redis_client: redis.Redis) -> None:
    _, key_id = _disabled_key(redis_client)
    redis_client.hset(redis_keys.account_info(key_id), "status", "active")  # what operators did
    pool = AccountPool(redis_client, resync_ms=200)
    redis_client.delete(redis_keys.ACCOUNT_RESYNC)  # the last resync was a minute ago
    assert isinstance(pool.acquire(), Lease)


def test_reimport_with_a_higher_limit_frees_a_parked_key_at_once(
        redis_client: redis.Redis) -> None:
    import_accounts(redis_client, load_accounts_list([account(1, minute_limit=2)]))
    pool = AccountPool(redis_client)
    assert all(isinstance(pool.acquire(), Lease) for _ in range(2))
    assert isinstance(pool.acquire(), NoKeyAvailable)  # parked for a minute
    import_accounts(redis_client, load_accounts_list([account(1, minute_limit=5)]))
    assert all(isinstance(pool.acquire(), Lease) for _ in range(3))
    assert isinstance(pool.acquire(), NoKeyAvailable)
