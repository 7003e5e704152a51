"""Tokens: per-minute token limits in the pool, media resolution, cost accounting and an
implicit-cache friendly request, against the pool on real Redis and the Gemini stand-in."""

from __future__ import annotations

import dataclasses

import pytest
import redis

from shared import redis_keys
from shared.accounts.importer import AccountEntry, import_accounts
from shared.accounts.pool import AccountPool, Lease, NoKeyAvailable, RequestTooLarge, account_id
from shared.config import DEFAULT_GEMINI_PRICES
from shared.errors import PermanentError
from shared.tagging.gemini import PROMPT_TOKENS, estimate_tokens
from tests.test_gemini import KEYS, make_tagger, pool, request_for  # noqa: F401


def seed(client: redis.Redis, tpm: int | None, n: int = 1) -> None:
    import_accounts(client, [AccountEntry(api_key=KEYS[i], daily_limit=1000, minute_limit=100,
                                          tpm_limit=tpm, username=f"u{i}", password="pw",
                                          phone="", email="") for i in range(n)])


def test_the_token_window_limits_grants(redis_client: redis.Redis) -> None:
    seed(redis_client, tpm=10_000)
    tokens_pool = AccountPool(redis_client)
    first = tokens_pool.acquire(6000)
    assert isinstance(first, Lease)
    refused = tokens_pool.acquire(6000)  # 12k would not fit in 10k
    assert isinstance(refused, NoKeyAvailable) and refused.reason == "token limit reached"
    assert 55 < refused.retry_after_s <= 61
    account = tokens_pool.stats()["accounts"][0]
    assert (account["tpm_limit"], account["tokens_this_minute"]) == (10_000, 6000)


def test_the_real_count_corrects_the_estimate(redis_client: redis.Redis) -> None:
    seed(redis_client, tpm=10_000)
    tokens_pool = AccountPool(redis_client)
    lease = tokens_pool.acquire(6000)
    tokens_pool.record_tokens(lease, 1500)  # usageMetadata said less
    redis_client.zadd(redis_keys.ACCOUNT_READY, {lease.key_id: 0})
    assert isinstance(tokens_pool.acquire(6000), Lease)
    assert tokens_pool.stats()["accounts"][0]["tokens_this_minute"] == 7500


def test_a_request_larger_than_every_key_fails_at_once(redis_client: redis.Redis) -> None:
    seed(redis_client, tpm=5000, n=2)
    with pytest.raises(RequestTooLarge) as caught:
        AccountPool(redis_client).acquire(8000)
    assert caught.value.error_code == "request_too_large"
    assert isinstance(AccountPool(redis_client).acquire(4000), Lease)  # smaller ones pass


def test_reimport_without_tpm_limit_keeps_working(redis_client: redis.Redis) -> None:
    seed(redis_client, tpm=5000)
    seed(redis_client, tpm=None)  # an older file without the field
    info = redis_client.hgetall(redis_keys.account_info(account_id(KEYS[0])))
    assert "tpm_limit" not in info
    assert isinstance(AccountPool(redis_client).acquire(8000), Lease)


def test_a_video_too_large_for_any_key_fails_the_task_at_once(
        redis_client, standin, media_dir) -> None:  # noqa: F811
    seed(redis_client, tpm=500)
    tagger = make_tagger(AccountPool(redis_client), standin)
    with pytest.raises(PermanentError) as caught:
        tagger.tag(request_for(media_dir / "clip.mp4", ["vision"]))
    assert caught.value.error_code == "request_too_large"
    assert standin.generate_calls() == []


@pytest.mark.parametrize(("setting", "duration", "sent"), [
    ("low", 2, "MEDIA_RESOLUTION_LOW"), ("medium", 2, "MEDIA_RESOLUTION_MEDIUM"),
    ("high", 2, "MEDIA_RESOLUTION_HIGH"), ("auto", 2, "MEDIA_RESOLUTION_MEDIUM"),
    ("auto", 400, "MEDIA_RESOLUTION_LOW"),
])
def test_media_resolution_reaches_the_request(pool, standin, media_dir, setting, duration,  # noqa: F811
                                              sent) -> None:
    tagger = make_tagger(pool, standin, GEMINI_MEDIA_RESOLUTION=setting)
    request = request_for(media_dir / "clip.mp4", ["vision"])
    request = dataclasses.replace(request, media=dataclasses.replace(request.media,
                                                                     duration_s=duration))
    tagger.tag(request)
    config = standin.generate_calls()[-1].body["generationConfig"]
    assert config.get("mediaResolution", config.get("media_resolution")) == sent


def test_the_estimate_follows_the_resolution(media_dir) -> None:
    request = request_for(media_dir / "clip.mp4", ["vision"])
    minute = dataclasses.replace(request, media=dataclasses.replace(request.media,
                                                                    duration_s=60.0))
    medium, low = estimate_tokens(minute, "medium", False), estimate_tokens(minute, "low", False)
    assert medium == PROMPT_TOKENS + 60 * 258 + 60 * 32  # ≈ 18k for a minute
    assert low == PROMPT_TOKENS + 60 * 66 + 60 * 32


def test_cost_is_tokens_times_the_table(pool, standin, media_dir) -> None:  # noqa: F811
    standin.prompt_tokens = 20_000
    first = make_tagger(pool, standin).tag(request_for(media_dir / "clip.mp4", ["vision"]))
    second = make_tagger(pool, standin).tag(request_for(media_dir / "clip.mp4", ["audio"]))
    price = DEFAULT_GEMINI_PRICES["gemini-2.5-flash"]
    for usage in (first.usage, second.usage):
        fresh = usage.prompt_tokens - usage.cached_tokens
        expected = (fresh * price["input"] + usage.cached_tokens * price["cached"]
                    + (usage.output_tokens + usage.thinking_tokens) * price["output"]) / 1e6
        assert usage.cost_usd == pytest.approx(expected, abs=1e-6)
    assert first.usage.cached_tokens == 0 and first.usage.cost_usd > 0


def test_the_constant_part_comes_first_and_is_byte_identical(pool, standin, media_dir,  # noqa: F811
                                                              tmp_path) -> None:
    from tests.media import ffmpeg

    other = tmp_path / "other.mp4"
    ffmpeg("-i", str(media_dir / "clip.mp4"), "-t", "1", "-c", "copy", str(other))
    tagger = make_tagger(pool, standin)
    tagger.tag(request_for(media_dir / "clip.mp4", ["vision"]))
    second = tagger.tag(request_for(other, ["vision"]))
    first_call, second_call = standin.generate_calls()
    parts = [call.body["contents"][0]["parts"] for call in (first_call, second_call)]
    assert parts[0][0] == parts[1][0] and "text" in parts[0][0]  # instructions, identical
    assert parts[0][-1] != parts[1][-1]  # this video's facts, last
    assert first_call.body["systemInstruction"] == second_call.body["systemInstruction"]
    assert second.usage.cached_tokens > 0  # recorded from cachedContentTokenCount


def test_stats_show_tokens_and_cost(app_env, standin, pool, media_server) -> None:  # noqa: F811
    import functions_framework

    app_env(TAGGER="gemini", GEMINI_BASE_URL=standin.base_url)
    standin.prompt_tokens = 10_000
    client = functions_framework.create_app("api", "main.py").test_client()
    done = client.post("/api/v1/vision_to_tag/google", json={
        "url": media_server.url("files/clip.mp4"), "dimensions": "vision"}).get_json()
    assert done["code"] == 200, done
    usage = done["data"]["result"]["usage"]
    stats = client.get("/api/v1/stats").get_json()["data"]["usage"]
    for window in ("last_hour", "today"):
        assert stats[window]["prompt_tokens"] == usage["prompt_tokens"] == 10_000
        assert stats[window]["cost_usd"] == pytest.approx(usage["cost_usd"], abs=1e-6)
    accounts = client.get("/api/v1/accounts").get_json()["data"]["accounts"]
    assert sum(a["tokens_this_minute"] for a in accounts) == 10_000  # the real count


@pytest.mark.serial  # times itself against a real limit, or uses the checkout's var/
@pytest.mark.slow
def test_a_backlog_of_long_videos_stays_under_every_key_token_limit(
        redis_client, media_dir) -> None:
    """3 keys whose token limit fits two long videos per window (the stand-in enforces the
    same limit with the real 429; the minute shrunk to 5 s): no self-inflicted 429, and
    the calls go at ≥ 0.9 of the pace the token budget allows."""
    import time

    from shared.config import load_settings
    from shared.errors import WaitForKey
    from shared.services import gemini_config
    from shared.tagging.gemini import GeminiTagger
    from tests.gemini_standin import GeminiStandIn

    window_s, per_request = 5.0, 18_000
    server = GeminiStandIn(tpm_limit=2 * per_request, window_s=window_s,
                           prompt_tokens=per_request).start()
    try:
        seed(redis_client, tpm=2 * per_request, n=3)
        long_pool = AccountPool(redis_client, window_ms=int(window_s * 1000))
        tagger = GeminiTagger(long_pool, gemini_config(load_settings(
            GEMINI_BASE_URL=server.base_url, TAGGER="gemini", GEMINI_MEDIA_RESOLUTION="medium")))
        request = request_for(media_dir / "clip.mp4", ["vision"])
        minute = dataclasses.replace(request, media=dataclasses.replace(
            request.media, duration_s=(per_request - PROMPT_TOKENS) / 290))
        assert abs(estimate_tokens(minute, "medium", False) - per_request) < 300
        started = time.monotonic()
        done = 0
        while done < 12:
            try:
                tagger.tag(minute)
                done += 1
            except WaitForKey as wait:  # a task would be planned for later: wait here
                time.sleep(wait.retry_after_s)
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    assert server.token_429s == 0 and len(server.generate_calls()) == 12
    # 6 requests fit each window: 12 need one more window, not many
    assert window_s <= elapsed < 3 * window_s + 2
    sent = sorted(server.token_accepted_at)
    ideal = (len(sent) - 1) // 6 * window_s  # the n-th at n // capacity windows
    print(f"token budget utilisation {ideal / (sent[-1] - sent[0]):.3f} "
          f"({len(sent)} calls in {sent[-1] - sent[0]:.2f} s, 0 token 429s)")
    assert ideal / (sent[-1] - sent[0]) >= 0.9


def test_a_token_429_cools_the_key_without_lowering_its_request_limit(
        redis_client: redis.Redis, standin, media_dir) -> None:  # noqa: F811
    from shared.accounts.pool import Outcome

    seed(redis_client, tpm=None, n=1)
    tokens_pool = AccountPool(redis_client)
    lease = tokens_pool.acquire()
    tokens_pool.report(lease.key_id, Outcome("tokens", "per-minute input tokens", 0.5),
                       lease.member)
    account = tokens_pool.stats()["accounts"][0]
    assert 0 < account["cooldown_left_s"] <= 1
    assert account["effective_minute_limit"] == account["minute_limit"] == 100


def test_each_key_shows_what_it_spent_today(pool, standin, media_dir) -> None:  # noqa: F811
    standin.prompt_tokens = 40_000
    result = make_tagger(pool, standin).tag(request_for(media_dir / "clip.mp4", ["vision"]))
    spent = [a["today"] for a in pool.stats()["accounts"] if a["today"]["input_tokens"]]
    assert len(spent) == 1
    assert spent[0]["input_tokens"] == 40_000 and spent[0]["output_tokens"] == 321
    assert spent[0]["cost_usd"] == pytest.approx(result.usage.cost_usd, abs=1e-6)
