"""GeminiTagger with the real google-genai client against the Gemini stand-in in tests/."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import functions_framework
import pytest
import redis

from shared import redis_keys
from shared.accounts.importer import AccountEntry, import_accounts
from shared.accounts.pool import AccountPool, account_id
from shared.app.tasks import create_task
from shared.config import load_settings
from shared.errors import PermanentError, TransientError
from shared.pipeline.runner import DeliveryKind, handle_delivery
from shared.services import Services, gemini_config
from shared.tagging.base import TagRequest
from shared.tagging.gemini import GeminiTagger
from shared.tasks.models import CreateTaskRequest
from shared.video.frames import extract_frames
from shared.video.probe import probe
from tests.gemini_standin import GeminiStandIn

KEYS = [f"AIzaSyGEMINI{n:028d}" for n in range(3)]


@pytest.fixture
def pool(redis_client: redis.Redis) -> AccountPool:
    import_accounts(redis_client, [
        AccountEntry(api_key=key, daily_limit=100, minute_limit=10, username=f"u{n}",
                     password="pw-secret", phone="", email="") for n, key in enumerate(KEYS)])
    return AccountPool(redis_client)


def make_tagger(pool: AccountPool, standin: GeminiStandIn, **settings) -> GeminiTagger:
    values = {"GEMINI_BASE_URL": standin.base_url, "TAGGER": "gemini", **settings}
    return GeminiTagger(pool, gemini_config(load_settings(**values)), sleep=lambda s: None)


def request_for(video: Path, dimensions: list[str], language: str = "zh") -> TagRequest:
    return TagRequest(video, probe(video), dimensions, language)


def stats_of(pool: AccountPool, key: str) -> dict:
    return next(a for a in pool.stats()["accounts"] if a["key_id"] == account_id(key))


@pytest.mark.parametrize("dimensions", [["vision"], ["audio"], ["content"], ["business"],
                                        ["vision", "audio", "content", "business"]])
def test_one_call_for_the_requested_dimensions(pool, standin, media_dir, dimensions) -> None:
    result = make_tagger(pool, standin).tag(request_for(media_dir / "clip.mp4", dimensions))
    calls = standin.generate_calls()
    assert len(calls) == 1
    schema = calls[0].body["generationConfig"]["responseSchema"]
    speech = {"spoken_language", "transcript"} if "audio" in dimensions else set()
    assert set(schema["properties"]) == {*dimensions, "key_moments", "summary", "safety",
                                         *speech}
    ordering = schema["property_ordering"]  # the SDK writes it snake_case
    assert ordering[len(ordering) - len(speech):] == sorted(speech)
    assert "inlineData" in calls[0].body["contents"][0]["parts"][1]  # after the instructions
    assert set(result.dimensions) == set(dimensions)
    first = dimensions[0]
    assert result.tags[0].startswith(first)
    assert max(t.confidence for g in result.dimensions[first].values() for t in g) == 1.0
    assert result.key_moments[0].start_s == 1.0 and result.summary == "summary-文本"
    assert (result.provider, result.model) == ("gemini", "gemini-2.5-flash")
    call = standin.generate_calls()[-1]
    assert result.usage.requests == 1 and result.usage.prompt_tokens == standin.usage(call.body)[
        "promptTokenCount"]
    assert result.prompt_version.startswith("p-") and result.technical.width == 320
    assert set(result.safety.categories) == {"adult", "violence", "hate", "dangerous_acts",
                                             "drugs", "gambling", "shocking"}


def test_english_prompt(pool, standin, media_dir) -> None:
    make_tagger(pool, standin).tag(request_for(media_dir / "clip.mp4", ["vision"], "en"))
    body = standin.generate_calls()[0].body
    assert "Analyse the video that follows" in body["contents"][0]["parts"][0]["text"]
    assert "The video above is 00:02 long" in body["contents"][0]["parts"][-1]["text"]
    assert "senior short-video analyst" in body["systemInstruction"]["parts"][0]["text"]


@pytest.mark.parametrize(("behaviour", "check"), [
    ("minute", lambda s: 35 < s["cooldown_left_s"] <= 41 and "per-minute" in s["last_error"]),
    ("bare429", lambda s: s["cooldown_left_s"] == 0 and "capacity" in s["last_error"]),
    ("invalid", lambda s: s["status"] == "disabled" and s["disabled_reason"] == "API_KEY_INVALID"),
    ("forbidden", lambda s: s["status"] == "disabled" and "403" in s["disabled_reason"]),
    ("500", lambda s: s["status"] == "active" and "500" in s["last_error"]),
])
def test_failing_key_is_reported_and_the_next_key_used(pool, standin, media_dir, behaviour,
                                                       check) -> None:
    for key in KEYS[:2]:
        standin.behaviours[key] = behaviour
    result = make_tagger(pool, standin).tag(request_for(media_dir / "clip.mp4", ["vision"]))
    keys_used = [c.api_key for c in standin.generate_calls()]
    assert keys_used[-1] == KEYS[2] and set(keys_used[:-1]) == set(KEYS[:2])
    assert result.usage.requests == 1
    for key in KEYS[:2]:
        assert check(stats_of(pool, key)), stats_of(pool, key)


def test_the_request_is_stamped_on_the_wire_and_its_send_measured(pool, standin, media_dir,
                                                                  redis_client) -> None:
    """The window entry moves to when the encoded body goes out (after building it), and
    the send latency feeds the pool's margin."""
    before_ms = time.time() * 1000
    make_tagger(pool, standin).tag(request_for(media_dir / "clip.mp4", ["vision"]))
    assert redis_client.llen(redis_keys.ACCOUNT_SEND_LATENCY) == 1
    assert 0 <= int(redis_client.lindex(redis_keys.ACCOUNT_SEND_LATENCY, 0)) < 5000
    (member, stamped), = [pair for key in KEYS for pair in redis_client.zrange(
        redis_keys.account_window(account_id(key)), 0, -1, withscores=True)]
    assert stamped >= before_ms and int(member.split(":")[0]) <= stamped


def test_a_key_gemini_announced_a_wait_for_is_not_sent_to(pool, standin, media_dir,
                                                          redis_client) -> None:
    """Granted, then Gemini announced a cooldown (another worker's 429) before the request
    left: it goes to the next key, and the refused grant is refunded."""
    for key in KEYS[:2]:
        redis_client.hset(redis_keys.account_info(account_id(key)), "announced_until",
                          int(time.time() * 1000) + 30_000)
    make_tagger(pool, standin).tag(request_for(media_dir / "clip.mp4", ["vision"]))
    assert [c.api_key for c in standin.generate_calls()] == [KEYS[2]]
    assert [stats_of(pool, key)["used_today"] for key in KEYS] == [0, 0, 1]


def test_a_boundary_429_fails_over_without_a_lesson(pool, standin, media_dir) -> None:
    """Gemini's window frees within a second (a race at the edge): next key, same task, the
    key keeps its limit and waits out only the delay."""
    standin.rate_limit, standin.whole_second_delays = 1, True
    request = request_for(media_dir / "clip.mp4", ["vision"])
    for key in KEYS:  # each key's window at Gemini frees 1.5 s from now ("2s")
        standin.project_accepted[(standin.project_of(key), "gemini-2.5-flash")] = [
            time.monotonic() - standin.window_s + 1.5]
    tagger = GeminiTagger(pool, gemini_config(load_settings(GEMINI_BASE_URL=standin.base_url,
                                                            TAGGER="gemini")))
    started = time.monotonic()
    result = tagger.tag(request)
    assert result.usage.requests == 1 and time.monotonic() - started < 6
    assert sum(len(times) for times in standin.refused.values()) >= 1
    for key in KEYS:
        assert stats_of(pool, key)["effective_minute_limit"] == 10
        assert stats_of(pool, key)["limit_changes"] == []


def test_day_429_parks_the_key_until_pacific_midnight(pool, standin, media_dir) -> None:
    for key in KEYS[:2]:
        standin.behaviours[key] = "day"
    make_tagger(pool, standin).tag(request_for(media_dir / "clip.mp4", ["vision"]))
    now = datetime.now(ZoneInfo("America/Los_Angeles"))
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(),
                                tzinfo=now.tzinfo)
    left = stats_of(pool, KEYS[0])["cooldown_left_s"]
    assert left == pytest.approx((midnight - now).total_seconds(), abs=5)


def test_timeout_fails_over(pool, standin, media_dir) -> None:
    for key in KEYS[:2]:
        standin.behaviours[key] = "slow"
    standin.slow_s = 3
    started = time.monotonic()
    result = make_tagger(pool, standin, GEMINI_TIMEOUT_S=1, GEMINI_TIMEOUT_PER_MINUTE_S=0,
                         GEMINI_TIMEOUT_PER_MB_S=0).tag(
        request_for(media_dir / "clip.mp4", ["vision"]))
    assert result.tags and time.monotonic() - started < 2.9
    assert [c.api_key for c in standin.generate_calls()][-1] == KEYS[2]
    for key in KEYS[:2]:
        assert "Timeout" in stats_of(pool, key)["last_error"]


def test_invalid_json_is_asked_again_once(pool, standin, media_dir) -> None:
    for key in KEYS:
        standin.behaviours[key] = "badjson_once"
    result = make_tagger(pool, standin).tag(request_for(media_dir / "clip.mp4", ["audio"]))
    assert result.tags and len(standin.generate_calls()) == 2


def test_invalid_json_twice_is_transient(pool, standin, media_dir) -> None:
    for key in KEYS:
        standin.behaviours[key] = "badjson"
    with pytest.raises(TransientError) as caught:
        make_tagger(pool, standin).tag(request_for(media_dir / "clip.mp4", ["audio"]))
    assert caught.value.error_code == "invalid_model_output"
    assert len(standin.generate_calls()) == 2


@pytest.mark.parametrize("behaviour", ["safety", "blocked"])
def test_safety_is_a_permanent_failure(pool, standin, media_dir, behaviour) -> None:
    for key in KEYS:
        standin.behaviours[key] = behaviour
    with pytest.raises(PermanentError) as caught:
        make_tagger(pool, standin).tag(request_for(media_dir / "clip.mp4", ["vision"]))
    assert caught.value.error_code == "blocked_by_safety"
    assert "safety" in caught.value.message.lower()
    assert len(standin.generate_calls()) == 1


def test_bad_request_is_not_blamed_on_the_key(pool, standin, media_dir) -> None:
    for key in KEYS:
        standin.behaviours[key] = "badrequest"
    with pytest.raises(PermanentError) as caught:
        make_tagger(pool, standin).tag(request_for(media_dir / "clip.mp4", ["vision"]))
    assert caught.value.error_code == "gemini_bad_request"
    assert all(a["status"] == "active" and not a["last_error"]
               for a in pool.stats()["accounts"])


def test_large_video_goes_through_the_files_api_with_one_key(pool, standin, media_dir) -> None:
    standin.processing_polls = 2
    tagger = make_tagger(pool, standin, INLINE_MAX_MB=0.01)
    result = tagger.tag(request_for(media_dir / "clip.mp4", ["vision"]))
    paths = [(r.method, r.path.split("/")[1]) for r in standin.requests]
    assert paths[0] == ("POST", "upload") and paths[-1][0] == "DELETE"
    gets = [r for r in standin.requests if r.method == "GET"]
    assert len(gets) == 3  # PROCESSING, PROCESSING, ACTIVE
    call = standin.generate_calls()[0]
    assert "fileData" in call.body["contents"][0]["parts"][1]
    assert {r.api_key for r in standin.requests if r.api_key} == {call.api_key}
    assert len(standin.deleted) == 1 and result.tags


def test_failed_file_is_permanent_and_deleted(pool, standin, media_dir) -> None:
    for key in KEYS:
        standin.behaviours[key] = "file_failed"
    with pytest.raises(PermanentError) as caught:
        make_tagger(pool, standin, INLINE_MAX_MB=0.01).tag(
            request_for(media_dir / "clip.mp4", ["vision"]))
    assert caught.value.error_code == "gemini_file_failed"
    assert len(standin.deleted) == 1 and standin.generate_calls() == []


def test_file_deleted_when_generate_fails(pool, standin, media_dir) -> None:
    for key in KEYS:
        standin.behaviours[key] = "safety"
    with pytest.raises(PermanentError):
        make_tagger(pool, standin, INLINE_MAX_MB=0.01).tag(
            request_for(media_dir / "clip.mp4", ["vision"]))
    assert len(standin.deleted) == 1


def test_frames_mode_sends_timestamped_frames_and_audio(pool, standin, media_dir,
                                                        tmp_path) -> None:
    video = media_dir / "clip.mp4"
    media = probe(video)
    frames = extract_frames(video, tmp_path / "frames", media.duration_s)
    work = tmp_path / "work"
    work.mkdir()
    copy = work / "source"
    copy.write_bytes(video.read_bytes())
    make_tagger(pool, standin, TAG_INPUT="frames").tag(
        TagRequest(copy, media, ["vision", "audio"], "zh", tuple(frames.frames)))
    parts = standin.generate_calls()[0].body["contents"][0]["parts"]
    assert "关键帧" in parts[0]["text"] and parts[1] == {"text": "[00:00]"}
    assert mime_of(parts[2]) == "image/jpeg" and mime_of(parts[-2]) == "audio/mp3"
    assert "以上视频时长" in parts[-1]["text"]
    assert not any("video/" in str(p) for p in parts)


def mime_of(part: dict) -> str:
    inline = part["inlineData"]  # the SDK writes the field snake_case; Gemini takes both
    return inline.get("mimeType") or inline.get("mime_type")


def gemini_services(services: Services, standin: GeminiStandIn) -> Services:
    services.settings.GEMINI_BASE_URL = standin.base_url
    services.tagger = GeminiTagger(services.pool, gemini_config(services.settings),
                                   sleep=lambda s: None)
    return services


def run_task(services: Services, url: str, **fields):
    request = CreateTaskRequest.model_validate({"url": url, "platform": "rpa", **fields},
                                               context={"platforms": ["rpa"]})
    task_id = create_task(services, request)[0].task_id
    return handle_delivery(task_id, services.worker), services.store.get(task_id)


def test_all_keys_exhausted_goes_back_pending_with_retry_after(
        sqlite_services, standin, media_server, pool) -> None:
    for key in KEYS:
        standin.behaviours[key] = "minute"
    services = gemini_services(sqlite_services, standin)
    reply, task = run_task(services, media_server.url("files/clip.mp4"))
    # waiting for a key: the next try is a planned delivery and no attempt is spent
    assert (reply.kind, reply.task_status, task.status) == (DeliveryKind.DONE, "pending",
                                                           "pending")
    assert task.error_code == "no_key_available" and 35 <= reply.retry_after_s <= 42
    assert task.attempts == 0 and task.waiting_since is not None
    assert len(standin.generate_calls()) == 3  # each key tried once, then all cooling
    reply, task = run_task(services, media_server.url("files/clip.mp4"))
    assert (reply.task_status, task.error_code, task.attempts) == (
        "pending", "no_key_available", 0)
    assert 35 <= reply.retry_after_s <= 42 and len(standin.generate_calls()) == 3
    assert task.timings.keys() == {"checking_quota"}  # learned before downloading anything


def test_result_cache_makes_no_second_request(sqlite_services, standin, media_server,
                                              pool) -> None:
    services = gemini_services(sqlite_services, standin)
    _, first = run_task(services, media_server.url("files/clip.mp4"), dimensions="vision")
    _, second = run_task(services, media_server.url("files/clip.mp4"), dimensions="vision")
    _, other = run_task(services, media_server.url("files/clip.mp4"), dimensions="audio")
    assert first.result.cached is False and second.result.cached is True
    assert second.result.tags == first.result.tags and second.result.usage.requests == 0
    assert other.result.cached is False and len(standin.generate_calls()) == 2
    services.settings.RESULT_CACHE = False
    _, fresh = run_task(services, media_server.url("files/clip.mp4"), dimensions="vision")
    assert fresh.result.cached is False and len(standin.generate_calls()) == 3


def test_sync_api_end_to_end(app_env, standin, media_server, pool) -> None:
    app_env(TAGGER="gemini", GEMINI_BASE_URL=standin.base_url)
    client = functions_framework.create_app("api", "main.py").test_client()
    response = client.post("/api/v1/vision_to_tag/google", json={
        "url": media_server.url("files/clip.mp4"), "dimensions": ["content", "business"]})
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["data"]["tags"][0].startswith("content.") and body["task_id"]
    assert set(body["data"]["result"]["dimensions"]) == {"content", "business"}
    task = client.get(f"/api/v1/task/{body['task_id']}").get_json()["data"]
    assert task["status"] == "completed" and task["platform"] == "rpa"
    bad = client.post("/api/v1/vision_to_tag/google",
                      json={"url": media_server.url("files/page.html")})
    assert bad.status_code == 415 and bad.get_json()["message"].startswith("unsupported_format")
    missing = client.post("/api/v1/vision_to_tag/google", json={"dimensions": "all"})
    assert missing.status_code == 400 and missing.get_json()["message"] == "url: is required"


def test_concurrent_first_calls_share_one_client(pool, standin, media_dir) -> None:
    """A fresh worker's first tasks arrive together: they must share one client. (Two
    clients created at once, one dropped: the SDK closes a dropped client's connections
    under the call still using it — "client has been closed", EBADF — a paid failure.)"""
    tagger = make_tagger(pool, standin)
    created = []
    new_client = tagger.clients.new_client

    def slow_new_client(api_key: str, endpoint: str):
        time.sleep(0.05)  # widen the window two threads would both enter
        created.append(endpoint)
        return new_client(api_key, endpoint)

    tagger.clients.new_client = slow_new_client
    request = request_for(media_dir / "clip.mp4", ["vision"])
    with ThreadPoolExecutor(6) as threads:
        results = list(threads.map(lambda _: tagger.tag(request), range(6)))
    assert len(results) == 6 and all(result.tags for result in results)
    assert created == [standin.base_url]
    assert not any(stats_of(pool, key)["last_error"] for key in KEYS)
