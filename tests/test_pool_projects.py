"""Quotas per Google Cloud project and model (issue 37): keys of one project share its
windows, each model counts in its own, a per-project 429 holds every key of the project,
and the import file's `project` and `limits` are checked."""

from __future__ import annotations

import json
import time
from pathlib import Path

import functions_framework
import pytest
import redis

from shared import redis_keys
from shared.accounts.importer import AccountEntry, ImportRefused, import_accounts, load_accounts
from shared.accounts.pool import AccountPool, Lease, Outcome, account_id
from shared.tagging.gemini import GeminiTagger
from tests.gemini_standin import GeminiStandIn
from tests.test_gemini import make_tagger, request_for
from tests.test_import import run_cli, write

MAIN, FALLBACK = "gemini-2.5-flash", "gemini-2.0-flash"


def key(n: int) -> str:
    return f"AIzaSyPROJECT{n:027d}"


def entry(n: int, project: str | None = None, minute: int = 3, **more) -> AccountEntry:
    return AccountEntry(api_key=key(n), daily_limit=1000, minute_limit=minute,
                        project=project, **more)


def grants(pool: AccountPool, model: str | None = None) -> list[str]:
    """Every lease the pool grants now, by key id."""
    granted = []
    while isinstance(lease := pool.acquire(model=model), Lease):
        granted.append(lease.key_id)
    return granted


def test_keys_of_one_project_share_its_minute(redis_client: redis.Redis) -> None:
    """3 keys of one project told the project's limit get the project's limit, not three
    times it; a key without a project is its own."""
    import_accounts(redis_client, [entry(0, "shared-proj"), entry(1, "shared-proj"),
                                   entry(2, "shared-proj"), entry(3)])
    pool = AccountPool(redis_client)
    granted = grants(pool)
    alone = account_id(key(3))
    assert granted.count(alone) == 3 and len(granted) == 6
    assert len({k for k in granted if k != alone}) == 3  # the project's 3, one each
    stats = pool.stats()
    shared = next(p for p in stats["projects"] if p["project"] == "shared-proj")
    assert len(shared["keys"]) == 3
    assert shared["models"][MAIN]["used_this_minute"] == 3
    assert shared["models"][MAIN]["minute_limit"] == 3
    assert stats["totals"]["capacity_left_this_minute"] == 0
    assert {a["project"] for a in stats["accounts"]} == {"shared-proj", None}


def test_each_model_counts_in_its_own_window(redis_client: redis.Redis) -> None:
    """The fallback's calls do not use the main model's quota; its limits are the file's
    `limits`, else the main model's."""
    import_accounts(redis_client, [
        entry(0, "p", minute=2, limits={FALLBACK: {"minute_limit": 5}}), entry(1, minute=2)])
    pool = AccountPool(redis_client)
    assert len(grants(pool)) == 4  # 2 + 2 of the main model
    fallback = grants(pool, FALLBACK)
    assert fallback.count(account_id(key(0))) == 5  # the file's limit for the fallback
    assert fallback.count(account_id(key(1))) == 2  # none written: the main model's
    projects = {p["project"]: p for p in pool.stats()["projects"]}
    assert projects["p"]["models"][FALLBACK]["used_this_minute"] == 5
    assert projects["p"]["models"][MAIN]["used_this_minute"] == 2


def test_a_per_project_429_holds_every_key_of_the_project(redis_client: redis.Redis) -> None:
    import_accounts(redis_client, [entry(0, "p", minute=10), entry(1, "p", minute=10),
                                   entry(2, minute=10)])
    pool = AccountPool(redis_client)
    lease = pool.acquire()
    held = pool.acquire()  # granted before the 429: must not be sent
    assert {lease.key_id, held.key_id} <= {account_id(key(0)), account_id(key(1)),
                                           account_id(key(2))}
    while lease.key_id == account_id(key(2)):
        lease = pool.acquire()
    pool.report(lease.key_id, Outcome("minute", "per-minute quota", retry_delay_s=30,
                                      scope="project"), lease.member, lease=lease)
    granted = {pool.acquire().key_id for _ in range(5)}
    assert granted == {account_id(key(2))}  # neither key of project p
    other = account_id(key(1)) if lease.key_id == account_id(key(0)) else account_id(key(0))
    sibling = pool.acquire()
    assert sibling.key_id != other
    project = next(p for p in pool.stats()["projects"] if p["project"] == "p")
    assert 28 < project["models"][MAIN]["cooldown_left_s"] <= 30
    # a lease of the project granted before the 429 is not sent
    in_flight = Lease(other, "unused-key", "0:x:0", lease.day, quota=lease.quota, model=MAIN)
    assert not pool.stamp_sent(in_flight)


def test_a_429_about_the_key_stays_with_the_key(redis_client: redis.Redis) -> None:
    import_accounts(redis_client, [entry(0, "p", minute=10), entry(1, "p", minute=10)])
    pool = AccountPool(redis_client)
    lease = pool.acquire()
    pool.report(lease.key_id, Outcome("minute", "per-minute quota", retry_delay_s=30,
                                      scope="key"), lease.member, lease=lease)
    others = {pool.acquire().key_id for _ in range(3)}
    assert others == {account_id(key(1)) if lease.key_id == account_id(key(0))
                      else account_id(key(0))}
    project = pool.stats()["projects"][0]["models"][MAIN]
    assert project["cooldown_left_s"] == 0 and project["limit_changes"] == []


def test_a_lesson_is_the_projects(redis_client: redis.Redis) -> None:
    """A per-project 429 under the limit teaches the project's limit once, for all keys."""
    import_accounts(redis_client, [entry(n, "p", minute=9) for n in range(3)])
    pool = AccountPool(redis_client)
    leases = [pool.acquire() for _ in range(5)]
    last = leases[-1]
    pool.report(last.key_id, Outcome("minute", "quota", retry_delay_s=30, scope="project"),
                last.member, lease=last)
    use = pool.stats()["projects"][0]["models"][MAIN]
    assert (use["minute_limit"], use["effective_minute_limit"]) == (9, 4)
    assert [(c["from"], c["to"]) for c in use["limit_changes"]] == [(9, 4)]
    assert {a["effective_minute_limit"] for a in pool.stats()["accounts"]} == {4}


def test_a_key_moved_while_requests_are_in_flight(redis_client: redis.Redis) -> None:
    """The request in flight is settled in the project it was counted in; the next ones
    count in the new project."""
    import_accounts(redis_client, [entry(0, "old", minute=5), entry(1, "new", minute=5)])
    pool = AccountPool(redis_client)
    moved = account_id(key(0))
    lease = next(lease for lease in [pool.acquire(), pool.acquire()]
                 if lease.key_id == moved)
    import_accounts(redis_client, [entry(0, "new", minute=5)])
    assert pool.stamp_sent(lease)
    pool.report(lease.key_id, Outcome.success(), lease.member, lease=lease)
    projects = {p["project"]: p for p in pool.stats()["projects"]}
    assert "old" not in projects and len(projects["new"]["keys"]) == 2
    assert redis_client.zcard(redis_keys.quota_window(lease.quota)) == 1  # where it counted
    assert projects["new"]["models"][MAIN]["used_this_minute"] == 1  # key 1's
    assert len(grants(pool)) == 4  # the new project's 5, one used


def test_the_smallest_limit_of_a_project_wins(redis_client: redis.Redis,
                                              tmp_path: Path) -> None:
    path = write(tmp_path, [{"api_key": key(0), "project": "p", "minute_limit": 8},
                            {"api_key": key(1), "project": "p", "minute_limit": 3}])
    warnings: list[str] = []
    entries = load_accounts(path, warnings)
    assert any("project p: its keys wrote different minute_limit (3, 8)" in w
               for w in warnings)
    import_accounts(redis_client, entries)
    assert len(grants(AccountPool(redis_client))) == 3


@pytest.mark.parametrize(("changes", "message"), [
    ({"project": ""}, "entry 1 (line 2): project: string should have at least 1 character"),
    ({"project": "p" * 65}, "entry 1 (line 2): project: string should have at most 64"),
    ({"project": 42}, "entry 1 (line 2): project: input should be a valid string (got 42)"),
    ({"project": "my project"}, "entry 1 (line 2): project: string should match pattern"),
    ({"limits": {"gemini-9": {"minute_limit": 5}}},
     "entry 1 (line 2): limits.gemini-9: unknown model (the other models: gemini-2.0-flash)"),
    ({"limits": {MAIN: {"minute_limit": 5}}},
     f"limits.{MAIN}: the main model's limits are minute_limit, daily_limit and tpm_limit"),
    ({"limits": {FALLBACK: {"minute_limt": 5}}}, "unknown field limits.gemini-2.0-flash."),
    ({"limits": {FALLBACK: {"minute_limit": 0}}}, "greater than 0"),
])
def test_bad_projects_and_limits_refuse_the_file(tmp_path: Path, changes, message) -> None:
    path = write(tmp_path, [{"api_key": key(0), **changes}])
    with pytest.raises(ImportRefused) as refused:
        load_accounts(path, [], [MAIN, FALLBACK])
    assert message in str(refused.value)


def test_a_key_under_two_projects_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, [{"api_key": key(0), "project": "a"},
                            {"api_key": key(0), "project": "b"}])
    with pytest.raises(ImportRefused) as refused:
        load_accounts(path, [])
    assert "entry 2 (line 6): api_key AIza…0000 is listed under project b here and under " \
           "a in entry 1: a key belongs to one project" in str(refused.value)
    assert key(0) not in str(refused.value)


def test_the_script_refuses_a_bad_project_with_exit_2(tmp_path: Path,
                                                      redis_client: redis.Redis) -> None:
    path = write(tmp_path, [{"api_key": key(0)}, {"api_key": key(1), "project": ""}])
    done = run_cli("--file", str(path))
    assert done.returncode == 2 and "entry 2 (line 5): project" in done.stderr
    assert not redis_client.exists(redis_keys.ACCOUNT_IDS)


def test_the_tagger_counts_the_fallback_in_its_own_quota(redis_client: redis.Redis,
                                                         standin: GeminiStandIn,
                                                         media_dir: Path) -> None:
    """While the main model is overloaded, the fallback's calls count in the fallback's
    window of the project, not in the main model's."""
    import_accounts(redis_client, [entry(0, "p", minute=10), entry(1, "p", minute=10)])
    pool = AccountPool(redis_client)
    standin.overloaded_until = time.monotonic() + 60
    tagger: GeminiTagger = make_tagger(pool, standin, GEMINI_FALLBACK_MODELS=FALLBACK)
    assert tagger.tag(request_for(media_dir / "clip.mp4", ["vision"])).model == FALLBACK
    models = pool.stats()["projects"][0]["models"]
    assert models[FALLBACK]["used_this_minute"] == 1
    assert models[MAIN]["used_this_minute"] == 1  # the overloaded call Gemini answered 503


def test_a_per_project_429_from_gemini_goes_to_the_next_project(
        redis_client: redis.Redis, standin: GeminiStandIn, media_dir: Path) -> None:
    """The stand-in counts per project: a call refused for project p is not retried on
    p's other key but on the other project."""
    import_accounts(redis_client, [entry(0, "p", minute=10), entry(1, "p", minute=10),
                                   entry(2, "q", minute=10)])
    standin.projects = {key(0): "p", key(1): "p", key(2): "q"}
    standin.rate_limit = 1
    standin.project_accepted[("p", MAIN)] = [time.monotonic()]  # p's window is full
    pool = AccountPool(redis_client)
    make_tagger(pool, standin).tag(request_for(media_dir / "clip.mp4", ["vision"]))
    called = [c.api_key for c in standin.generate_calls()]
    assert called[-1] == key(2) and len([k for k in called if k != key(2)]) <= 1
    assert json.dumps(pool.stats()).count("AIzaSyPROJECT") == 0


def test_accounts_and_history_routes_answer_per_project(app_env,
                                                        redis_client: redis.Redis) -> None:
    import_accounts(redis_client, [entry(0, "shared-proj"), entry(1, "shared-proj"),
                                   entry(2)])
    pool = AccountPool(redis_client)
    for _ in range(2):
        lease = pool.acquire()
        pool.report(lease.key_id, Outcome.success(), lease.member, lease=lease)
    client = functions_framework.create_app("api", "main.py").test_client()
    data = client.get("/api/v1/accounts").get_json()["data"]
    shared = next(p for p in data["projects"] if p["project"] == "shared-proj")
    assert len(shared["keys"]) == 2 and shared["models"][MAIN]["minute_limit"] == 3
    assert data["totals"]["projects"] == 2
    history = client.get("/api/v1/accounts/projects/shared-proj/history?days=2").get_json()
    assert history["data"]["keys"] == shared["keys"]
    assert history["data"]["days"][-1]["requests"] >= 1
    assert client.get("/api/v1/accounts/projects/nope/history").status_code == 404
    assert client.get("/api/v1/accounts/projects/a%20b/history").status_code == 400
