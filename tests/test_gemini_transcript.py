"""The transcript in the same call (issue 38): asked for with the audio dimension, fitted
to the video, merged over windows, sized in output tokens, cut at a whole segment when
the answer is cut off twice, translated on request — through the Gemini stand-in."""

# ruff: noqa: F811 - the `pool` fixture comes from test_gemini and is a parameter here

from __future__ import annotations

import io
from pathlib import Path

import pytest
import webvtt
from pydantic import ValidationError

from scripts.sample_video import make_video
from shared.pipeline.stages import fitted
from shared.tagging import transcript
from shared.tagging.base import TagRequest
from shared.tagging.gemini import MAX_OUTPUT_TOKENS
from shared.tagging.result import TranscriptSegment
from shared.tasks.models import CreateTaskRequest
from shared.tasks.subtitles import MAX_LINE_CHARS, MAX_LINES, MIN_CUE_S, render_subtitles
from shared.video.probe import probe
from tests.gemini_standin import GeminiStandIn
from tests.test_gemini import gemini_services, make_tagger, pool, run_task  # noqa: F401


@pytest.fixture(scope="module")
def minute_clip(tmp_path_factory) -> Path:
    """60 s with a sound track: the issue's target clip."""
    return make_video(tmp_path_factory.mktemp("speech") / "minute.mp4", seconds=60,
                      size="160x120", fps=5)


def ask(pool, standin: GeminiStandIn, video: Path, dimensions=("audio",),
        translate_to: str | None = None, **settings):
    request = TagRequest(video, probe(video), list(dimensions), "zh",
                         translate_to=translate_to)
    result = make_tagger(pool, standin, **settings).tag(request)
    return fitted(result, request.media.duration_s, ()), standin.generate_calls()


def test_the_transcript_comes_in_the_same_call(pool, standin, media_dir) -> None:
    result, calls = ask(pool, standin, media_dir / "clip.mp4", ("vision", "audio"))
    assert len(calls) == 1
    body = calls[0].body
    schema = body["generationConfig"]["responseSchema"]
    ordering = schema.get("propertyOrdering") or schema["property_ordering"]  # SDK: snake
    assert ordering[-2:] == ["spoken_language", "transcript"]
    assert "translation" not in schema["properties"]["transcript"]["items"]["properties"]
    assert "转写语音" in body["contents"][0]["parts"][0]["text"]
    assert body["generationConfig"]["maxOutputTokens"] == transcript.output_budget(
        8192, 2.0, None, MAX_OUTPUT_TOKENS) > 8192
    assert result.spoken_language == "zh" and result.translated_to is None
    assert [(s.start_s, s.end_s, s.speaker) for s in result.transcript] == [(0.1, 2.0, "A")]
    assert result.transcript[0].text == "大家好，欢迎来到今天的节目"
    assert result.warnings == []


def test_no_transcript_without_audio_requested(pool, standin, media_dir) -> None:
    result, calls = ask(pool, standin, media_dir / "clip.mp4", ("vision",))
    schema = calls[0].body["generationConfig"]["responseSchema"]
    assert "transcript" not in schema["properties"] and result.transcript == []
    assert calls[0].body["generationConfig"]["maxOutputTokens"] == 8192
    assert result.spoken_language is None


def test_a_video_without_an_audio_stream_is_not_transcribed(pool, standin, media_dir) -> None:
    result, calls = ask(pool, standin, media_dir / "portrait.mp4", ("vision", "audio"),
                        translate_to="en")
    schema = calls[0].body["generationConfig"]["responseSchema"]
    assert "transcript" not in schema["properties"]
    assert "转写" not in calls[0].body["contents"][0]["parts"][0]["text"]
    assert result.transcript == [] and result.spoken_language is None
    assert result.translated_to is None and "-tr" not in result.prompt_version


def test_translate_to_adds_a_translation_per_segment(pool, standin, minute_clip) -> None:
    result, calls = ask(pool, standin, minute_clip, translate_to="en")
    items = calls[0].body["generationConfig"]["responseSchema"]["properties"]["transcript"][
        "items"]["properties"]
    assert "translation" in items and "English" not in calls[0].body["contents"][0][
        "parts"][0]["text"] and "英文" in calls[0].body["contents"][0]["parts"][0]["text"]
    assert result.translated_to == "en" and len(result.transcript) == 20
    assert all(s.translation and s.translation != s.text for s in result.transcript)
    assert result.prompt_version.endswith("-tren")
    assert calls[0].body["generationConfig"]["maxOutputTokens"] == 8192 + 900 + 450


def test_a_translation_that_repeats_the_text_is_dropped(pool, standin, media_dir) -> None:
    standin.answers["transcript"] = [
        {"start": "00:00.2", "end": "00:01.5", "speaker": "A", "text": "hello",
         "translation": "hello"}]
    result, _ = ask(pool, standin, media_dir / "clip.mp4", translate_to="en")
    assert result.transcript[0].translation is None and result.translated_to is None


@pytest.mark.parametrize(("body", "says"), [
    ({"translate_to": "fr"}, "translate_to: unsupported language 'fr' (supported: zh, en)"),
    ({"translate_to": 3}, "translate_to: "),
    ({"translate_to": "en", "dimensions": "vision"}, "translate_to: translates the transcript"),
])
def test_translate_to_is_checked(body: dict, says: str) -> None:
    from functions.http import describe_validation

    with pytest.raises(ValidationError) as caught:
        CreateTaskRequest.model_validate({"url": "https://example.com/v.mp4", "platform": "rpa",
                                          **body}, context={"platforms": ["rpa"]})
    assert describe_validation(caught.value).startswith(says)


def test_bad_times_are_fitted_to_the_video(pool, standin, media_dir) -> None:
    """Past the end, overlapping within a speaker, out of order: fixed and said."""
    standin.answers["transcript"] = [
        {"start": "00:01.2", "end": "00:01.8", "speaker": "A", "text": "second"},
        {"start": "00:00.0", "end": "00:01.5", "speaker": "A", "text": "first"},
        {"start": "00:00.5", "end": "00:01.0", "speaker": "B", "text": "other voice"},
        {"start": "00:01.9", "end": "00:09", "speaker": "B", "text": "runs past the end"},
        {"start": "00:05", "end": "00:06", "speaker": "A", "text": "after the end"},
        {"start": "00:01.0", "end": "00:01.4", "speaker": "A", "text": "inside first"},
        {"start": "nonsense", "end": "00:01", "text": "no time"},
    ]
    result, _ = ask(pool, standin, media_dir / "clip.mp4")
    assert [(s.start_s, s.end_s, s.speaker, s.text) for s in result.transcript] == [
        (0.0, 1.5, "A", "first inside first"), (0.5, 1.0, "B", "other voice"),
        (1.5, 1.8, "A", "second"), (1.9, 2.0, "B", "runs past the end")]
    said = " | ".join(result.warnings)
    for part in ("1 transcript segment(s) past the end", "ending past the end",
                 "out of order", "2 overlapping transcript segment(s) of one speaker"):
        assert part in said


def test_a_long_video_is_transcribed_window_by_window(pool, standin, minute_clip) -> None:
    result, calls = ask(pool, standin, minute_clip, GEMINI_WINDOW_S=20)
    assert len(calls) == 3
    budgets = {c.body["generationConfig"]["maxOutputTokens"] for c in calls}
    assert budgets == {transcript.output_budget(8192, 20, None, MAX_OUTPUT_TOKENS)}
    starts = [s.start_s for s in result.transcript]
    assert starts == sorted(starts) and len(starts) == 21  # 7 a window, the last one short
    assert starts[0] == 0.1 and starts[7] == 20.1 and starts[14] == 40.1
    assert all(0 <= s.start_s < s.end_s <= 60 for s in result.transcript)
    assert result.spoken_language == "zh"


def test_a_cut_off_transcript_is_asked_again_with_a_larger_budget(pool, standin,
                                                                 minute_clip) -> None:
    standin.behaviours = {k: "transcript_cut_once" for k in _keys()}
    standin.cut_at = 10_000
    result, calls = ask(pool, standin, minute_clip)
    budgets = [c.body["generationConfig"]["maxOutputTokens"] for c in calls]
    assert budgets == [8192 + 900, 2 * (8192 + 900)]
    assert len(result.transcript) == 20 and result.warnings == []


def test_a_transcript_cut_off_twice_keeps_its_whole_segments(pool, standin,
                                                            minute_clip) -> None:
    standin.behaviours = {k: "transcript_cut" for k in _keys()}
    result, calls = ask(pool, standin, minute_clip, ("vision", "audio"))
    assert len(calls) == 2
    assert 0 < len(result.transcript) < 20
    assert result.transcript[-1].text and result.dimensions["vision"]
    assert any(w.startswith("transcript cut off at the output limit: kept its first")
               for w in result.warnings)


def test_an_answer_cut_before_its_transcript_still_fails(pool, standin, minute_clip) -> None:
    from shared.errors import TransientError

    standin.behaviours = {k: "truncated" for k in _keys()}
    standin.answers["transcript"] = []
    with pytest.raises(TransientError, match="cut off"):
        ask(pool, standin, minute_clip, ("vision", "content", "business", "audio"))


def test_salvage_keeps_the_properties_before_and_the_whole_segments() -> None:
    text = ('{"summary": "s", "spoken_language": "en", "transcript": [{"start": "00:01", '
            '"end": "00:02", "text": "one"}, {"start": "00:03", "end": "00:0')
    data, kept = transcript.salvage(text)
    assert kept == 1 and data["summary"] == "s" and data["transcript"][0]["text"] == "one"
    assert transcript.salvage('{"summary": "cut her') is None
    assert transcript.salvage('{"summary": "s", "transcript": [') == (
        {"summary": "s", "transcript": []}, 0)


def test_the_minute_clip_gives_a_valid_vtt_inside_the_video(pool, standin,
                                                             minute_clip) -> None:
    """The issue's target: a 60 s clip with speech, its segments inside the video, and
    every cue of its `.vtt` parsed by a WebVTT parser."""
    result, _ = ask(pool, standin, minute_clip, ("vision", "audio"))
    assert result.transcript and all(0 <= s.start_s <= s.end_s <= 60 for s in result.transcript)
    text = render_subtitles(result, "vtt")
    parsed = webvtt.from_buffer(io.StringIO(text))
    assert len(parsed.captions) == text.count(" --> ") >= len(result.transcript)
    for caption in parsed.captions:
        assert caption.end_in_seconds - caption.start_in_seconds >= MIN_CUE_S - 0.001
        assert len(caption.lines) <= MAX_LINES
        assert all(len(line) <= MAX_LINE_CHARS for line in caption.lines)


def test_fit_keeps_the_answer_without_a_duration() -> None:
    segments = [TranscriptSegment(start_s=5, end_s=4, text="b"),
                TranscriptSegment(start_s=1, end_s=2, text="a")]
    fitted_, warnings = transcript.fit(segments, None)
    assert [(s.start_s, s.end_s) for s in fitted_] == [(1, 2), (5, 5)]
    assert warnings == ["transcript segments were out of order: sorted by time"]


def _keys() -> list[str]:
    from tests.test_gemini import KEYS

    return KEYS


def test_budget_is_capped() -> None:
    assert transcript.output_budget(8192, 3 * 3600, "en", MAX_OUTPUT_TOKENS) == MAX_OUTPUT_TOKENS
