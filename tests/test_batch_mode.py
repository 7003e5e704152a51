"""Gemini Batch mode (issue 27): tasks prepared by the real worker code, collected into
jobs and finished by the collector, against the Gemini stand-in's Batch API (real
google-genai client, real Redis, SQLite and MariaDB)."""

from __future__ import annotations

import functions_framework
import pytest
import redis
import requests
import sqlalchemy as sa

from scripts.stack import LocalStack, free_port
from shared.accounts.importer import AccountEntry, import_accounts
from shared.accounts.pool import AccountPool, account_id
from shared.app.stats import service_stats
from shared.app.tasks import create_task
from shared.pipeline import batch_collector
from shared.pipeline.batch_collector import collect
from shared.pipeline.runner import DeliveryKind, handle_delivery
from shared.services import Services, gemini_config, get_services
from shared.tagging.gemini import GeminiTagger
from shared.tasks import rollups
from shared.tasks.gemini_jobs import GeminiJobStore
from shared.tasks.models import CreateTaskRequest
from shared.tasks.schema import video_tasks
from tests.gemini_standin import GeminiStandIn
from tests.helpers import RedisServer, wait_for
from tests.test_dashboard import ARGS, CHROMIUM, api_server  # noqa: F401 - fixture
from tests.test_faults import FAST_CONSUMER, all_finished, seed_keys, stack_env, unfinished

KEY = "AIzaSyBATCH" + "0" * 28


@pytest.fixture
def pool(redis_client: redis.Redis) -> AccountPool:
    import_accounts(redis_client, [AccountEntry(api_key=KEY, daily_limit=1000, minute_limit=100,
                                                username="u", password="pw-secret", phone="",
                                                email="")])
    return AccountPool(redis_client)


@pytest.fixture
def batch_services(services: Services, standin: GeminiStandIn, pool) -> Services:
    """The `services` fixture (SQLite and MariaDB) with the Gemini tagger on the stand-in."""
    services.settings.TAGGER = "gemini"
    services.settings.GEMINI_BASE_URL = standin.base_url
    services.tagger = GeminiTagger(services.pool, gemini_config(services.settings),
                                   sleep=lambda s: None)
    return services


def prepared(services: Services, url: str, count: int = 1, **fields) -> list[str]:
    """Tasks created in batch mode and delivered once: each waits for a batch job."""
    ids = []
    for _ in range(count):
        request = CreateTaskRequest.model_validate(
            {"url": url, "platform": "rpa", "mode": "batch", **fields},
            context={"platforms": ["rpa"]})
        task_id = create_task(services, request)[0].task_id
        reply = handle_delivery(task_id, services.worker)
        assert (reply.kind, reply.task_status) == (DeliveryKind.DONE, "waiting_batch"), reply
        ids.append(task_id)
    return ids


def sweep_until_done(services: Services, sweeps: int = 6) -> list[dict[str, int]]:
    return [collect(services.worker) for _ in range(sweeps)]


def states(services: Services, ids: list[str]) -> list[str]:
    return [services.store.get(task_id).status for task_id in ids]


def test_waiting_tasks_are_tagged_in_one_inline_job_at_half_price(
        batch_services, standin, media_server) -> None:
    services = batch_services
    ids = prepared(services, media_server.url("files/clip.mp4"), 3)
    task = services.store.get(ids[0])
    assert (task.status, task.stage, task.mode, task.attempts) == (
        "waiting_batch", "waiting_batch", "batch", 0)
    assert task.batch_job is None and task.batch_since is not None
    assert standin.generate_calls() == []  # nothing sent interactively
    again = handle_delivery(ids[0], services.worker)  # a stray delivery changes nothing
    assert (again.kind, again.task_status) == (DeliveryKind.DONE, "waiting_batch")
    assert services.store.get(ids[0]).status == "waiting_batch"
    first = collect(services.worker)
    assert first["jobs_created"] == 1 and first["tasks_submitted"] == 3
    job = standin.batch_jobs()[0]
    assert job["displayName"].startswith("vtt-") and not job["file"]
    assert sorted(key for key, _ in job["requests"]) == sorted(ids)
    assert services.store.get(ids[0]).batch_job is not None
    assert collect(services.worker) == {}  # pending, then running: nothing changes
    sweep_until_done(services)
    assert states(services, ids) == ["completed"] * 3
    result = services.store.get(ids[0]).result
    assert result.usage.batch_requests == 1 and result.usage.requests == 1
    assert result.dimensions and result.tags and result.key_moments is not None
    assert "batch_wait" in services.store.get(ids[0]).timings
    # the same usage at the interactive price costs twice as much
    from shared.tagging.gemini import priced
    interactive = priced(result.usage.model_copy(update={"cost_usd": 0}), result.model,
                         services.tagger.config.prices)
    assert result.usage.cost_usd == pytest.approx(interactive.cost_usd / 2, abs=2e-6)
    jobs = GeminiJobStore(services.store.engine)
    assert [j.state for j in jobs.recent()] == ["succeeded"]
    spent = next(a for a in services.pool.stats()["accounts"] if a["key_id"] == account_id(KEY))
    assert spent["today"]["cost_usd"] == pytest.approx(
        sum(services.store.get(i).result.usage.cost_usd for i in ids), abs=1e-5)
    stats = service_stats(services)
    assert stats["tasks"]["completed"] == 3 and stats["gemini_batches"]["jobs"]["succeeded"] == 1
    assert stats["usage"]["today"]["batch_requests"] == 3


def test_a_large_job_goes_through_a_jsonl_file_and_every_file_is_deleted(
        batch_services, standin, media_server, monkeypatch) -> None:
    services = batch_services
    monkeypatch.setattr(batch_collector, "INLINE_JOB_MAX_BYTES", 1000)
    ids = prepared(services, media_server.url("files/clip.mp4"), 2)
    sweep_until_done(services)
    assert states(services, ids) == ["completed"] * 2
    job = standin.batch_jobs()[0]
    assert job["file"] and len(job["requests"]) == 2
    uploads = [r for r in standin.requests if r.path.startswith("/upload/v1/files")]
    assert len(uploads) == 1
    input_id = next(i for i, f in standin.files.items() if f["mime"] == "application/jsonl"
                    and b'"key"' in bytes(f["data"]) and b'"request"' in bytes(f["data"]))
    output_id = job["output"]["responsesFile"].rsplit("/", 1)[1]
    assert input_id in standin.deleted and output_id in standin.deleted


def test_one_failed_item_fails_only_its_task(batch_services, standin, media_server) -> None:
    services = batch_services
    ids = prepared(services, media_server.url("files/clip.mp4"), 3)
    standin.failed_items.add(ids[1])
    sweep_until_done(services)
    assert states(services, ids) == ["completed", "failed", "completed"]
    failed = services.store.get(ids[1])
    assert failed.error_code == "gemini_bad_request" and "code 3" in failed.message


@pytest.mark.parametrize("end", ["BATCH_STATE_EXPIRED", "BATCH_STATE_FAILED",
                                 "BATCH_STATE_CANCELLED"])
def test_a_job_that_ends_badly_sends_its_tasks_into_the_next_job(
        batch_services, standin, media_server, end) -> None:
    services = batch_services
    ids = prepared(services, media_server.url("files/clip.mp4"), 2)
    standin.batch_ends[KEY] = end
    for _ in range(3):
        collect(services.worker)
    jobs = GeminiJobStore(services.store.engine)
    assert [j.state for j in jobs.recent()][-1] == end.removeprefix("BATCH_STATE_").lower()
    assert states(services, ids) == ["waiting_batch"] * 2
    assert [services.store.get(i).attempts for i in ids] == [0, 0]  # no attempt spent
    del standin.batch_ends[KEY]
    sweep_until_done(services)
    assert states(services, ids) == ["completed"] * 2
    assert len(standin.batch_jobs()) == 2  # resubmitted once


def test_a_crash_after_creating_the_job_does_not_submit_its_tasks_twice(
        batch_services, standin, media_server, monkeypatch) -> None:
    services = batch_services
    ids = prepared(services, media_server.url("files/clip.mp4"), 2)

    def crash(self, job_id: str, name: str) -> None:
        raise SystemExit("killed between the creation call and its record")

    with monkeypatch.context() as patched:
        patched.setattr(GeminiJobStore, "submitted", crash)
        with pytest.raises(SystemExit):
            collect(services.worker)
    assert len(standin.batch_jobs()) == 1
    services.redis.delete("gemini_batches:collector_lock")  # the dead sweep's lock
    counts = collect(services.worker)
    assert counts.get("jobs_recovered") == 1 and "jobs_created" not in counts
    sweep_until_done(services)
    assert states(services, ids) == ["completed"] * 2
    assert len(standin.batch_jobs()) == 1


def test_a_task_that_fell_back_ignores_its_jobs_late_answer(
        batch_services, standin, media_server) -> None:
    services = batch_services
    ids = prepared(services, media_server.url("files/clip.mp4"), 2)
    collect(services.worker)  # submitted
    services.settings.BATCH_MAX_WAIT_S = 0.001
    counts = collect(services.worker)
    assert counts["fell_back"] == 2
    task = services.store.get(ids[0])
    assert (task.status, task.mode, task.error_code) == ("pending", "interactive",
                                                         "batch_wait_exceeded")
    services.settings.BATCH_MAX_WAIT_S = 3600
    counts = collect(services.worker)  # the job ends: its answers come too late
    assert counts["late_answers_ignored"] == 2
    assert states(services, ids) == ["pending"] * 2
    reply = handle_delivery(ids[0], services.worker)  # tagged interactively now
    assert reply.task_status == "completed" and len(standin.generate_calls()) == 1
    assert services.store.get(ids[0]).result.usage.batch_requests == 0


def test_unknown_keys_and_malformed_lines_in_an_output_file_are_skipped(
        batch_services, standin, media_server, monkeypatch) -> None:
    services = batch_services
    monkeypatch.setattr(batch_collector, "INLINE_JOB_MAX_BYTES", 1000)
    standin.extra_output_lines += [
        '{"key": "11111111-2222-3333-4444-555555555555", "response": {"candidates": []}}',
        '{not json at all', '["a list"]']
    ids = prepared(services, media_server.url("files/clip.mp4"), 2)
    counts = sweep_until_done(services)
    assert states(services, ids) == ["completed"] * 2
    assert sum(c.get("unknown_keys", 0) for c in counts) == 1
    assert sum(c.get("malformed_lines", 0) for c in counts) == 2


def test_an_output_file_with_no_readable_line_leaves_its_tasks_waiting(
        batch_services, standin, media_server, monkeypatch) -> None:
    services = batch_services
    monkeypatch.setattr(batch_collector, "INLINE_JOB_MAX_BYTES", 1000)
    ids = prepared(services, media_server.url("files/clip.mp4"), 1)
    standin.failed_items.add("none")
    original = standin.batch_output

    def garbled(job_id: str) -> dict:
        output = original(job_id)
        file_id = output["responsesFile"].rsplit("/", 1)[1]
        standin.files[file_id]["data"] = bytearray(b"\x00\xff garbage\n{{{\n")
        return output

    standin.batch_output = garbled
    counts = sweep_until_done(services, 3)
    assert sum(c.get("malformed_lines", 0) for c in counts) == 2
    assert states(services, ids) == ["waiting_batch"]  # no answer: into the next job
    standin.batch_output = original
    sweep_until_done(services)
    assert states(services, ids) == ["completed"]


def test_a_video_too_large_to_go_inline_is_uploaded_and_deleted_once_tagged(
        batch_services, standin, media_server) -> None:
    services = batch_services
    services.settings.INLINE_MAX_MB = 0.001
    services.tagger = GeminiTagger(services.pool, gemini_config(services.settings),
                                   sleep=lambda s: None)  # the tagger reads it when built
    ids = prepared(services, media_server.url("files/clip.mp4"))
    uploaded = [i for i, f in standin.files.items() if (f["mime"] or "").startswith("video/")]
    assert len(uploaded) == 1 and uploaded[0] not in standin.deleted
    collect(services.worker)
    parts = standin.batch_jobs()[0]["requests"][0][1]["contents"][0]["parts"]
    assert any("fileData" in part or "file_data" in part for part in parts)
    sweep_until_done(services)
    assert states(services, ids) == ["completed"] and uploaded[0] in standin.deleted


def test_a_batch_task_does_not_wait_for_an_interactive_request_slot(
        batch_services, pool, media_server) -> None:
    services = batch_services
    while not hasattr(pool.acquire(0), "retry_after_s"):
        pass  # every request slot of this minute taken by interactive work
    ids = prepared(services, media_server.url("files/clip.mp4"))
    assert services.store.get(ids[0]).batch_key == account_id(KEY)


# --- the API's bad inputs ---------------------------------------------------------------


@pytest.fixture
def client(app_env):
    return functions_framework.create_app("api", "main.py").test_client()


VALID = {"url": "https://cdn.example.com/v.mp4", "platform": "rpa"}


def test_an_unknown_mode_is_refused(client) -> None:
    response = client.post("/api/v1/task/create", json={**VALID, "mode": "later"})
    body = response.get_json()
    assert response.status_code == 400 and "mode" in body["message"]
    assert "'interactive' or 'batch'" in body["message"]
    batch = client.post("/api/v1/batches", json={"name": "b", "items": [
        {**VALID, "mode": "later"}]}).get_json()
    assert batch["data"]["items"][0]["error"]["field"] == "mode"


def test_batch_mode_with_the_local_tagger_is_refused_naming_the_setting(client) -> None:
    response = client.post("/api/v1/task/create", json={**VALID, "mode": "batch"})
    body = response.get_json()
    assert response.status_code == 400
    assert body["message"].startswith("mode:") and "TAGGER=gemini" in body["message"]
    assert "TAGGER=local" in body["message"]
    batch = client.post("/api/v1/batches", json={"name": "b", "items": [
        {**VALID, "mode": "batch"}, VALID]}).get_json()
    assert batch["data"]["items"][0]["error"]["field"] == "mode"
    assert "TAGGER" in batch["data"]["items"][0]["error"]["reason"]
    assert batch["data"]["accepted"] == 1


def test_the_synchronous_route_refuses_batch_mode(app_env) -> None:
    app_env(TAGGER="gemini", GEMINI_BASE_URL="http://127.0.0.1:9")
    client = functions_framework.create_app("api", "main.py").test_client()
    response = client.post("/api/v1/vision_to_tag/google", json={**VALID, "mode": "batch"})
    assert response.status_code == 400 and response.get_json()["message"].startswith("mode:")


def test_the_deployment_default_mode_applies_when_a_request_names_none(app_env) -> None:
    app_env(TAGGER="gemini", DEFAULT_MODE="batch", GEMINI_BASE_URL="http://127.0.0.1:9")
    client = functions_framework.create_app("api", "main.py").test_client()
    created = client.post("/api/v1/task/create", json=VALID).get_json()
    task = client.get(f"/api/v1/task/{created['task_id']}").get_json()["data"]
    assert task["mode"] == "batch"
    explicit = client.post("/api/v1/task/create", json={**VALID, "mode": "interactive"})
    task = client.get(f"/api/v1/task/{explicit.get_json()['task_id']}").get_json()["data"]
    assert task["mode"] == "interactive"


def test_key_ids_not_keys_reach_the_job_rows(batch_services, media_server) -> None:
    services = batch_services
    prepared(services, media_server.url("files/clip.mp4"), 1)
    collect(services.worker)
    job = GeminiJobStore(services.store.engine).recent()[0]
    assert job.key_id == account_id(KEY) and KEY not in repr(job)


# --- through the functions and the local stack ------------------------------------------


def test_cleanup_scope_batches_runs_the_collector(app_env, standin, media_server,
                                                  redis_client) -> None:
    """api (create) → process_task (prepare) → cleanup?scope=batches (collect) as
    functions, the way Cloud Scheduler drives them on Google Cloud."""
    app_env(TAGGER="gemini", GEMINI_BASE_URL=standin.base_url)
    import_accounts(redis_client, [AccountEntry(api_key=KEY, daily_limit=1000,
                                                minute_limit=100, username="u",
                                                password="pw-secret", phone="", email="")])
    api = functions_framework.create_app("api", "main.py").test_client()
    worker = functions_framework.create_app("process_task", "main.py").test_client()
    cleanup = functions_framework.create_app("cleanup", "main.py").test_client()
    task_id = api.post("/api/v1/task/create", json={
        "url": media_server.url("files/clip.mp4"), "platform": "rpa",
        "mode": "batch"}).get_json()["task_id"]
    delivered = worker.post("/", json={"task_id": task_id})
    assert delivered.status_code == 200
    task = api.get(f"/api/v1/task/{task_id}").get_json()["data"]
    assert (task["status"], task["stage"], task["mode"]) == ("waiting_batch",
                                                            "waiting_batch", "batch")
    first = cleanup.get("/?scope=batches").get_json()
    assert first["code"] == 200 and first["data"]["batches"]["jobs_created"] == 1
    for _ in range(4):
        cleanup.get("/?scope=batches")
    task = api.get(f"/api/v1/task/{task_id}").get_json()["data"]
    assert task["status"] == "completed" and task["result"]["usage"]["batch_requests"] == 1
    stats = api.get("/api/v1/stats").get_json()["data"]
    assert stats["gemini_batches"]["recent"][0]["state"] == "succeeded"
    assert cleanup.get("/?scope=nope").status_code == 400


@pytest.mark.slow
def test_the_local_stack_tags_batch_tasks_through_its_consumer(
        mysql_db_url, standin, media_server, tmp_path) -> None:
    """Real processes: api, worker and consumer under the supervisor; the consumer's
    periodic sweep collects, polls and finishes the batch job."""
    server = RedisServer(free_port()).start()
    try:
        seed_keys(server.url)
        env = stack_env(mysql_db_url, server.url, tmp_path, TAGGER="gemini",
                        GEMINI_BASE_URL=standin.base_url, DEFAULT_MODE="batch",
                        BATCH_POLL_S="0.5")
        stack = LocalStack(env, log_dir=tmp_path / "logs")
        stack.start(consumer_args=FAST_CONSUMER)
        try:
            ids = [requests.post(f"{stack.api_url}/api/v1/task/create", timeout=10, json={
                "url": media_server.url("files/clip.mp4"), "platform": "rpa"}).json()["task_id"]
                for _ in range(4)]
            tasks = wait_for(all_finished(stack, ids), timeout_s=60, interval_s=0.5,
                             describe=unfinished(stack, ids))
        finally:
            stack.stop()
    finally:
        server.kill()
    assert [t["status"] for t in tasks.values()] == ["completed"] * 4
    assert all(t["mode"] == "batch" and t["result"]["usage"]["batch_requests"] == 1
               for t in tasks.values())
    assert standin.generate_calls() == []
    # a job per sweep that found tasks waiting; each task submitted exactly once
    assert sorted(key for job in standin.batch_jobs() for key, _ in job["requests"]) == \
        sorted(ids)


@pytest.mark.slow
def test_the_dashboard_lists_gemini_jobs_and_their_state(api_server, app_env) -> None:  # noqa: F811
    """The self-contained dashboard section, in headless chromium (tests/test_dashboard.py);
    shown with the Gemini tagger (the offline tagger's dashboard leaves it out)."""
    from playwright.sync_api import expect, sync_playwright

    app_env(TAGGER="gemini", GEMINI_BASE_URL="http://127.0.0.1:9")
    services = get_services()
    jobs = GeminiJobStore(services.store.engine)
    with services.store.engine.begin() as conn:
        row = conn.execute(sa.select(video_tasks.c.task_id, video_tasks.c.status)
                           .where(video_tasks.c.status == "pending").limit(1)).first()
        conn.execute(sa.update(video_tasks).where(video_tasks.c.task_id == row.task_id).values(
            status="waiting_batch", batch_token="t" * 32, batch_key="k", batch_model="m"))
        rollups.moved(conn, row.task_id, row.status, "waiting_batch")  # as the store does
    job = jobs.create("a" * 32, "k", "gemini-2.5-flash", jobs.unassigned(10))
    jobs.submitted(job.job_id, "batches/xyz")
    jobs.end(job.job_id, "expired")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(f"{api_server}/dashboard")
        page.fill("#token", "dash-token")
        page.click("#save-token")
        rows = page.locator("#gemini-jobs tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first.locator("td").nth(1)).to_have_text("expired")
        expect(rows.first.locator("td").nth(2)).to_have_text("1")
        expect(page.locator("#gj-counts")).to_have_text("1 expired")
        expect(page.locator("#gj-waiting")).to_have_text("1")
        browser.close()
