"""Gemini as it really fails, against the stand-in: model overload (503 UNAVAILABLE),
region refusals through relays (400 FAILED_PRECONDITION), thinking budget, timeouts."""

from __future__ import annotations

import dataclasses
import math
import threading
import time

import functions_framework
import pytest
import redis

from shared import redis_keys
from shared.accounts.pool import account_id
from shared.config import load_settings
from shared.errors import WaitForModel, WaitForRoute
from shared.pipeline.runner import DeliveryKind
from shared.services import Services, gemini_config
from shared.tagging.gemini import GeminiTagger, timeout_ms
from shared.tagging.health import GeminiHealth
from shared.tasks.models import TaskStatus
from tests.gemini_standin import GeminiStandIn
from tests.test_gemini import KEYS, pool, request_for, run_task  # noqa: F401 - fixture

FAST = (0.3, 1.0)
"""Model back-offs for tests: 0.3 s doubling up to 1 s (production: 5 s up to 300 s)."""


@pytest.fixture
def standins():
    servers = [GeminiStandIn().start(), GeminiStandIn().start()]
    yield servers
    for server in servers:
        server.stop()


def tagger_for(pool, endpoints: list[GeminiStandIn],  # noqa: F811
               endpoint_backoff_s: tuple[float, float] = FAST, **settings) -> GeminiTagger:
    values = {"GEMINI_BASE_URL": ",".join(s.base_url for s in endpoints), "TAGGER": "gemini",
              **settings}
    return GeminiTagger(pool, gemini_config(load_settings(**values)), sleep=lambda s: None,
                        health=GeminiHealth(pool.redis, model_backoff_s=FAST,
                                            endpoint_backoff_s=endpoint_backoff_s))


def key_states(client: redis.Redis) -> list[dict]:
    return [client.hgetall(redis_keys.account_info(account_id(key))) for key in KEYS]


def test_overload_penalises_no_key_and_two_workers_share_one_back_off(
        pool, standins, media_dir) -> None:  # noqa: F811
    standin = standins[0]
    standin.overloaded_until = time.monotonic() + 2.5
    workers = [tagger_for(pool, [standin]) for _ in range(2)]  # two processes' taggers
    results, waits = [], []

    def work(tagger: GeminiTagger) -> None:
        while True:
            try:
                results.append(tagger.tag(request_for(media_dir / "clip.mp4", ["vision"])))
                return
            except WaitForModel as wait:
                waits.append(wait.retry_after_s)
                time.sleep(min(wait.retry_after_s, 0.5))

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    answered_503 = len(standin.generate_calls()) - 2  # every call but the two successes
    assert len(results) == 2 and all(r.model == "gemini-2.5-flash" for r in results)
    # back-offs of 0.3, 0.6, 1, 1 s over 2.5 s: one probe per back-off end, not one per
    # worker; the first 503 may race (both workers sent before either heard it)
    assert answered_503 <= 6, answered_503
    assert waits  # the workers waited instead of failing over keys
    for state in key_states(pool.redis):
        assert state["status"] == "active" and state["consecutive_failures"] == "0"
        assert int(state["cooldown_until"]) == 0
    assert not pool.redis.exists(redis_keys.gemini_model("gemini-2.5-flash"))  # cleared by success


def test_overload_waits_without_spending_attempts(sqlite_services, standins, media_server,
                                                  pool) -> None:  # noqa: F811
    standins[0].overloaded_until = time.monotonic() + 60
    services = _gemini(sqlite_services, [standins[0]])
    reply, task = run_task(services, media_server.url("files/clip.mp4"))
    assert (reply.task_status, task.status, task.error_code) == (
        TaskStatus.PENDING, "pending", "gemini_overloaded")
    assert task.attempts == 0 and task.waiting_since is not None
    standins[0].overloaded_until = 0
    services.tagger.health.model_ok("gemini-2.5-flash")  # the back-off ran out
    from shared.pipeline.runner import handle_delivery

    done = handle_delivery(task.task_id, services.worker)
    assert done.task_status == TaskStatus.COMPLETED
    assert services.store.get(task.task_id).attempts == 1


def test_a_fallback_model_answers_during_the_overload(pool, standins, media_dir) -> None:  # noqa: F811
    standins[0].overloaded_until = time.monotonic() + 60
    tagger = tagger_for(pool, [standins[0]], GEMINI_FALLBACK_MODELS="gemini-2.5-flash-lite")
    result = tagger.tag(request_for(media_dir / "clip.mp4", ["vision"]))
    assert result.model == "gemini-2.5-flash-lite"
    paths = [c.path for c in standins[0].generate_calls()]
    assert paths[0].endswith("gemini-2.5-flash:generateContent")
    assert paths[-1].endswith("gemini-2.5-flash-lite:generateContent")
    assert all(s["consecutive_failures"] == "0" for s in key_states(pool.redis))


def test_a_refused_region_on_one_endpoint_goes_through_the_other(
        app_env, standins, media_dir, pool) -> None:  # noqa: F811
    refused, good = standins
    refused.refuse_location = True
    tagger = tagger_for(pool, [refused, good], endpoint_backoff_s=(30.0, 60.0))
    result = tagger.tag(request_for(media_dir / "clip.mp4", ["vision"]))
    assert result.tags and len(good.generate_calls()) == 1
    assert len(refused.generate_calls()) == 1  # tried once, then it backs off
    tagger.tag(request_for(media_dir / "clip.mp4", ["vision"]))
    assert len(refused.generate_calls()) == 1 and len(good.generate_calls()) == 2
    assert all(s["status"] == "active" and s["consecutive_failures"] == "0"
               for s in key_states(pool.redis))
    app_env(TAGGER="gemini", GEMINI_BASE_URL=f"{refused.base_url},{good.base_url}")
    client = functions_framework.create_app("api", "main.py").test_client()
    health = client.get("/healthz").get_json()
    assert health["code"] == 200  # the service is up; Gemini's refusal is said plainly
    first, second = health["data"]["gemini"]["endpoints"]
    assert first["status"] == "region" and "location is not supported" in first["advice"]
    assert second["status"] == "ok"
    stats = client.get("/api/v1/stats").get_json()["data"]["gemini"]
    assert stats["endpoints"][0]["status"] == "region"


def test_refused_everywhere_tasks_wait_and_the_status_says_why(
        sqlite_services, standins, media_server, pool) -> None:  # noqa: F811
    for standin in standins:
        standin.refuse_location = True
    services = _gemini(sqlite_services, standins)
    reply, task = run_task(services, media_server.url("files/clip.mp4"))
    assert (task.status, task.error_code, task.attempts) == (
        "pending", "gemini_region_refused", 0)
    assert reply.kind == DeliveryKind.DONE and reply.retry_after_s >= 0.2
    with pytest.raises(WaitForRoute):
        services.tagger.tag(request_for_path(media_server))
    status = services.tagger.health.status(["gemini-2.5-flash"],
                                           list(services.tagger.config.endpoints))
    assert [e["status"] for e in status["endpoints"]] == ["region", "region"]
    assert "GEMINI_BASE_URL" in status["endpoints"][0]["advice"]


def request_for_path(media_server):
    from pathlib import Path

    return request_for(Path(media_server.folder) / "clip.mp4", ["vision"])


def test_an_endpoint_that_does_not_answer_is_skipped(pool, standins, media_dir) -> None:  # noqa: F811
    from scripts.stack import free_port

    dead = type("Dead", (), {"base_url": f"http://127.0.0.1:{free_port()}"})()
    tagger = tagger_for(pool, [dead, standins[1]])
    result = tagger.tag(request_for(media_dir / "clip.mp4", ["vision"]))
    assert result.tags and len(standins[1].generate_calls()) == 1
    state = tagger.health.status(["gemini-2.5-flash"], list(tagger.config.endpoints))
    assert state["endpoints"][0]["status"] == "unreachable"
    assert all(s["consecutive_failures"] == "0" for s in key_states(pool.redis))


@pytest.mark.parametrize(("budget", "sent"), [("0", 0), ("512", 512), ("-1", None)])
def test_thinking_budget_and_call_timeout_reach_the_request(pool, standins, media_dir,  # noqa: F811
                                                            budget, sent) -> None:
    tagger = tagger_for(pool, [standins[0]], GEMINI_THINKING_BUDGET=budget,
                        GEMINI_TIMEOUT_S=100, GEMINI_TIMEOUT_PER_MINUTE_S=60,
                        GEMINI_TIMEOUT_PER_MB_S=2)
    request = request_for(media_dir / "clip.mp4", ["vision"])
    result = tagger.tag(request)
    call = standins[0].generate_calls()[-1]
    thinking = call.body["generationConfig"].get("thinkingConfig")
    thinking = thinking or {}
    assert thinking.get("thinkingBudget", thinking.get("thinking_budget")) == sent
    size_mb = (media_dir / "clip.mp4").stat().st_size / 1024 / 1024
    expected = 100 + 60 * request.media.duration_s / 60 + 2 * size_mb
    assert call.headers["X-Server-Timeout"] == str(math.ceil(expected))
    assert result.usage.thinking_tokens == 0


def test_a_long_video_gets_a_longer_timeout(pool, standins, media_dir) -> None:  # noqa: F811
    tagger = tagger_for(pool, [standins[0]], GEMINI_TIMEOUT_S=120)
    short = request_for(media_dir / "clip.mp4", ["vision"])
    long = dataclasses.replace(short, media=dataclasses.replace(short.media, duration_s=600.0))
    assert timeout_ms(tagger.config, long) - timeout_ms(tagger.config, short) == pytest.approx(
        60 * (600 - short.media.duration_s) / 60 * 1000, abs=1)


def _gemini(services: Services, endpoints: list[GeminiStandIn]) -> Services:
    services.settings.TAGGER = "gemini"
    services.tagger = tagger_for(services.pool, endpoints)
    return services
