"""Tags users can trust (issue 23): the caller's vocabulary, moments that match the video,
brand safety, no truncated answers — through the Gemini stand-in and the real API."""

# ruff: noqa: F811 - the `pool` fixture comes from test_gemini and is a parameter here

from __future__ import annotations

import functions_framework
import pytest

from shared.accounts.importer import AccountEntry, import_accounts
from shared.accounts.pool import AccountPool
from shared.config import load_settings
from shared.errors import PermanentError
from shared.services import gemini_config
from shared.tagging import moments, vocabulary, windows
from shared.tagging.base import TagRequest
from shared.tagging.gemini import GeminiTagger
from shared.tagging.result import KeyMoment
from shared.video.probe import probe
from tests.gemini_standin import GeminiStandIn
from tests.test_gemini import KEYS, gemini_services, pool, run_task  # noqa: F401 - fixture


def tagger_for(pool: AccountPool, standin: GeminiStandIn, **settings) -> GeminiTagger:
    return GeminiTagger(pool, gemini_config(load_settings(
        GEMINI_BASE_URL=standin.base_url, TAGGER="gemini", **settings)), sleep=lambda s: None)


def request_for(media_dir, vocab=None, dimensions=("vision", "business")) -> TagRequest:
    video = media_dir / "clip.mp4"
    return TagRequest(video, probe(video), list(dimensions), "zh",
                      vocabulary=vocabulary.parse(vocab) if vocab else None)


# --- the caller's vocabulary ---------------------------------------------------------

@pytest.mark.parametrize(("vocab", "says"), [
    ({"vision.colour": ["红"]}, "vision.colour: unknown dimension.field"),
    ({"sound.music": ["rock"]}, "sound.music: unknown dimension.field"),
    ({f"vision.scene{n}": ["x"] for n in range(51)}, "51 fields, at most 50"),
    ({"vision.scene": [f"t{n}" for n in range(301)]}, "301 tags, at most 300"),
    ({"vision.scene": ["x" * 41]}, "vision.scene[0]: longer than 40 characters"),
    ({"vision.scene": ["室内", " "]}, "vision.scene[1]: must be a non-empty string"),
    ({"vision.scene": ["Beach", "beach "]}, "vision.scene[1]: 'beach' duplicates 'Beach'"),
    ({"vision.scene": ["ＡＢ", "ab"]}, "vision.scene[1]: 'ab' duplicates 'ＡＢ'"),
    ({"vision.scene": []}, "vision.scene: must be a non-empty list"),
    ({"vision.scene": {"tags": ["a"], "closed": "yes"}}, "vision.scene.closed: must be true"),
    ({"vision.scene": {"tags": ["a"], "open": True}}, "unknown key 'open'"),
    (["vision.scene"], "must be an object"),
])
def test_bad_vocabularies_are_refused_naming_the_field(app_env, vocab, says) -> None:
    app_env()
    client = functions_framework.create_app("api", "main.py").test_client()
    reply = client.post("/api/v1/task/create", json={
        "url": "http://127.0.0.1:9/v.mp4", "platform": "rpa", "vocabulary": vocab})
    body = reply.get_json()
    assert reply.status_code == 400 and "vocabulary" in body["message"], body
    assert says in body["message"], body
    assert client.get("/api/v1/tasks").get_json()["data"]["tasks"] == []  # nothing written


def test_the_vocabulary_is_stored_with_the_task(app_env) -> None:
    app_env()
    client = functions_framework.create_app("api", "main.py").test_client()
    created = client.post("/api/v1/task/create", json={
        "url": "http://127.0.0.1:9/v.mp4", "platform": "rpa",
        "vocabulary": {"vision.characters": ["女性", "男性"],
                       "business.product": {"tags": ["口红"], "closed": True}}}).get_json()
    task = client.get(f"/api/v1/task/{created['task_id']}").get_json()["data"]
    assert task["vocabulary"] == {"business.product": {"tags": ["口红"], "closed": True},
                                  "vision.characters": {"tags": ["女性", "男性"],
                                                        "closed": False}}


def test_a_closed_field_is_an_enum_and_an_open_one_keeps_free_tags(pool, standin,
                                                                   media_dir) -> None:
    standin.answers = {
        "business.product": [{"tag": "口红", "confidence": 0.9},
                             {"tag": "手表", "confidence": 0.8}],
        "vision.characters": [{"tag": "女性", "confidence": 0.9},
                              {"tag": "小孩", "confidence": 0.6}]}
    vocab = {"vision.characters": ["女性", "男性"],
             "business.product": {"tags": ["口红", "粉底"], "closed": True}}
    result = tagger_for(pool, standin).tag(request_for(media_dir, vocab))
    body = standin.generate_calls()[0].body
    schema = body["generationConfig"]["responseSchema"]["properties"]
    assert schema["business"]["properties"]["product"]["items"]["properties"]["tag"][
        "enum"] == ["口红", "粉底"]
    assert "女性, 男性" in body["contents"][0]["parts"][0]["text"]  # preferred tags
    assert [t.tag for t in result.dimensions["business"]["product"]] == ["口红"]
    assert [(t.tag, t.free) for t in result.dimensions["vision"]["characters"]] == [
        ("女性", False), ("小孩", True)]
    plain = tagger_for(pool, standin).tag(request_for(media_dir))
    assert result.prompt_version == plain.prompt_version + vocabulary.fingerprint(
        vocabulary.parse(vocab))  # part of the result-cache key


# --- moments that match the video ----------------------------------------------------

def moment(start: float, end: float, *tags: str, text: str = "m") -> KeyMoment:
    return KeyMoment(start_s=start, end_s=end, description=text, tags=list(tags))


def test_moments_are_clamped_snapped_merged_and_counted() -> None:
    fitted, warnings = moments.fit([
        moment(1.4, 1.0, "a"),        # end before start
        moment(3.1, 4.5, "b"),        # snapped to the cuts at 3.0 and 5.2
        moment(4.0, 7.0, "b"),        # overlaps the one before with the same tags
        moment(8.0, 30.0, "c"),       # runs past the end
        moment(12.0, 14.0, "d"),      # wholly outside
    ], duration_s=10.0, cuts=(3.0, 5.2, 8.6))
    assert [(m.start_s, m.end_s, m.tags) for m in fitted] == [
        (1.4, 1.4, ["a"]), (3.0, 7.0, ["b"]), (8.6, 10.0, ["c"])]
    assert warnings == ["1 key moment(s) past the end of the video (10 s) dropped"]


def test_moments_of_a_video_of_unknown_length_are_kept_with_a_warning() -> None:
    fitted, warnings = moments.fit([moment(50.0, 40.0, "a")], duration_s=0.0)
    assert [(m.start_s, m.end_s) for m in fitted] == [(50.0, 50.0)]
    assert warnings == ["video duration unknown: key moments not checked against it"]


def test_the_pipeline_fits_the_models_moments_to_the_video(sqlite_services, standin, pool,
                                                           media_server) -> None:
    """Gemini answers moments past the end and overlapping ones: the stored result has
    them inside the 2 s clip, merged, with the dropped one counted."""
    standin.answers = {"key_moments": [
        {"start": "00:00", "end": "00:01", "description": "开场", "tags": ["开场"]},
        {"start": "00:01", "end": "00:09", "description": "开场续", "tags": ["开场"]},
        {"start": "01:10", "end": "01:20", "description": "不存在", "tags": ["虚构"]}]}
    reply, task = run_task(gemini_services(sqlite_services, standin),
                           media_server.url("files/clip.mp4"))
    assert task.status == "completed", task.message
    assert [(m.start_s, m.end_s, m.tags) for m in task.result.key_moments] == [
        (0.0, 2.0, ["开场"])]
    assert task.result.warnings == ["1 key moment(s) past the end of the video (2 s) dropped"]


# --- brand safety and truncated answers ----------------------------------------------

@pytest.mark.parametrize("behaviour", ["safety", "blocked"])
def test_a_blocked_answer_names_its_categories_without_a_key_penalty(
        pool, standin, media_dir, behaviour) -> None:
    for key in KEYS:
        standin.behaviours[key] = behaviour
    with pytest.raises(PermanentError) as caught:
        tagger_for(pool, standin).tag(request_for(media_dir))
    assert caught.value.error_code == "blocked_by_safety"
    assert "dangerous_content" in caught.value.message
    assert len(standin.generate_calls()) == 1  # no retry
    for account in pool.stats()["accounts"]:
        assert account["status"] == "active" and account["cooldown_left_s"] == 0


def test_the_safety_section_has_the_models_judgement_and_geminis_ratings(
        pool, standin, media_dir) -> None:
    standin.answers = {"safety.gambling": {"level": "medium", "at": "00:01"}}
    result = tagger_for(pool, standin).tag(request_for(media_dir))
    judged = result.safety.categories
    assert (judged["gambling"].level, judged["gambling"].at_s) == ("medium", 1.0)
    assert judged["adult"].level == "none" and judged["adult"].at_s is None
    assert [(r.category, r.probability) for r in result.safety.gemini_ratings] == [
        ("HARM_CATEGORY_HARASSMENT", "NEGLIGIBLE")]


def test_an_answer_cut_off_is_asked_again_with_more_room(pool, standin, media_dir) -> None:
    standin.cut_at = 4096
    for key in KEYS:
        standin.behaviours[key] = "truncated_once"
    result = tagger_for(pool, standin, GEMINI_MAX_OUTPUT_TOKENS=4096).tag(
        request_for(media_dir))
    calls = standin.generate_calls()
    assert [c.body["generationConfig"]["maxOutputTokens"] for c in calls] == [4096, 8192]
    assert "key_moments" in calls[1].body["contents"][0]["parts"][-1]["text"]  # fewer asked
    assert result.usage.requests == 2 and result.tags  # both calls counted


def test_an_answer_cut_off_twice_is_not_paid_a_third_time(pool, standin, media_dir) -> None:
    for key in KEYS:
        standin.behaviours[key] = "truncated"
    with pytest.raises(Exception) as caught:
        tagger_for(pool, standin).tag(request_for(media_dir))
    assert getattr(caught.value, "error_code", "") == "invalid_model_output"
    assert "cut off" in str(caught.value)
    assert len(standin.generate_calls()) == 2  # the first, then once with more room


# --- long videos in windows ---------------------------------------------------------------

def test_windows_cover_the_video_in_equal_parts() -> None:
    assert windows.plan(7200, 1200) == [(i * 1200.0, (i + 1) * 1200.0) for i in range(6)]
    assert windows.plan(2500, 1200) == [(0.0, 833.333), (833.333, 1666.667), (1666.667, 2500)]
    assert windows.plan(600, 1200) == [(0.0, 600)]
    assert windows.plan(0, 1200) == [(0.0, 0.0)]


def _part(*spans: tuple[float, float]) -> dict:
    return {"dimensions": {}, "summary": "", "safety": None, "usage": {},
            "key_moments": [{"start_s": a, "end_s": b, "tags": [f"m{a:g}"], "description": ""}
                            for a, b in spans]}


def test_a_part_answered_on_its_own_clock_is_moved_onto_the_video() -> None:
    """Part 2 (12:30–25:00) answers 00:01–00:03: the part's own clock, moved by 12:30;
    a moment inside the part stays; one that fits neither reading is dropped; both are
    said in `warnings`. The first part's clock is the video's: nothing moves there."""
    parts = [(0.0, 750.0), (750.0, 1500.0)]
    merged = windows.merge([_part((1, 3)), _part((1, 3), (800, 810), (1400, 2000))], parts)
    assert [(m.start_s, m.end_s) for m in merged["key_moments"]] == [
        (1, 3), (751, 753), (800, 810)]
    assert merged["warnings"] == [
        "part 12:30–25:00: 1 key moment(s) answered on the part's own clock, moved by 12:30",
        "part 12:30–25:00: 1 key moment(s) outside the part dropped"]


def test_a_part_whose_moments_all_lie_inside_it_keeps_them_and_says_nothing() -> None:
    merged = windows.merge([_part((10, 20)), _part((760, 770), (1499.5, 1500.5))],
                           [(0.0, 750.0), (750.0, 1500.0)])
    assert [m.start_s for m in merged["key_moments"]] == [10, 760, 1499.5]
    assert merged["warnings"] == []


def clip_offsets(call) -> list[tuple[str, str]]:
    """videoMetadata offsets sent (the SDK writes the inner fields snake_case, which
    Gemini's JSON parser takes as it takes camelCase)."""
    return [(clip.get("startOffset") or clip.get("start_offset"),
             clip.get("endOffset") or clip.get("end_offset"))
            for clip in (p.get("videoMetadata") for p in call.body["contents"][0]["parts"])
            if clip]


def test_a_long_video_is_tagged_in_windows_and_merged(pool, standin, media_dir) -> None:
    result = tagger_for(pool, standin, GEMINI_WINDOW_S=1).tag(request_for(media_dir))
    calls = standin.generate_calls()
    assert [clip_offsets(c) for c in calls] == [[("0s", "1s")], [("1s", "2s")]]
    assert "00:01–00:02" in calls[1].body["contents"][0]["parts"][-1]["text"]
    assert [(m.start_s, m.tags) for m in result.key_moments] == [
        (0.2, ["片段0"]), (1.2, ["片段1"])]  # absolute times, both parts
    assert result.summary == "[00:00–00:01] 从 0 秒开始的一段 [00:01–00:02] 从 1 秒开始的一段"
    assert result.usage.requests == 2 and result.usage.prompt_tokens == sum(
        standin.usage(c.body)["promptTokenCount"] for c in calls)


def test_a_redelivery_asks_only_for_the_missing_windows(sqlite_services, standin, pool,
                                                        media_server) -> None:
    """The first delivery gets one part in, then Gemini fails: the part is kept on the row,
    and the next delivery asks for the other part only."""
    sqlite_services.settings.GEMINI_WINDOW_S = 1
    sqlite_services.settings.GEMINI_DEADLINE_S = 0.5
    services = gemini_services(sqlite_services, standin)  # the tagger reads them when built
    standin.fail_after = 1
    reply, task = run_task(services, media_server.url("files/clip.mp4"))
    assert task.status == "pending" and list(task.windows) == ["0"]
    standin.fail_after = None
    from shared.pipeline.runner import handle_delivery
    services.store.engine.dispose()
    handle_delivery(task.task_id, services.worker)
    done = services.store.get(task.task_id)
    assert done.status == "completed" and done.windows is None
    offsets = [clip_offsets(c) for c in standin.generate_calls() if standin.answered]
    assert offsets[-1] == [("1s", "2s")] and offsets.count([("0s", "1s")]) == 1
    assert [m.tags for m in done.result.key_moments] == [["片段0"], ["片段1"]]


def test_a_three_hour_video_fits_a_small_token_limit_window_by_window(
        redis_client, standin, media_dir) -> None:
    """The token limit applies to each window, not to the whole video: 9 windows of 20
    minutes fit a 150,000-token limit that the whole 3 hours (~1.06 M) never could."""
    import dataclasses

    import_accounts(redis_client, [AccountEntry(
        api_key=KEYS[0], daily_limit=100, minute_limit=100, tpm_limit=150_000, username="u",
        password="pw", phone="", email="")], replace=True)
    request = request_for(media_dir)
    request = dataclasses.replace(request, media=dataclasses.replace(request.media,
                                                                     duration_s=10_800))
    result = tagger_for(AccountPool(redis_client), standin).tag(request)
    assert result.usage.requests == 9
    import_accounts(redis_client, [AccountEntry(
        api_key=KEYS[0], daily_limit=100, minute_limit=100, tpm_limit=50_000, username="u",
        password="pw", phone="", email="")], replace=True)
    with pytest.raises(PermanentError) as caught:
        tagger_for(AccountPool(redis_client), standin).tag(request)
    assert caught.value.error_code == "request_too_large"
