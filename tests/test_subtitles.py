"""Subtitles from the transcript (issue 38): cues of at most 2 lines of 42 characters, at
least 1 s each, every one parsed by a WebVTT parser; on-screen text and key moments as
their own `?kind=`; translate_to carried from the create request to the task."""

from __future__ import annotations

import io

import pytest
import webvtt

from shared.services import get_services
from shared.tagging.result import KeyMoment, TagResult, TranscriptSegment
from shared.tasks.subtitles import (
    MAX_LINE_CHARS,
    MAX_LINES,
    MIN_CUE_S,
    cues,
    render_subtitles,
    wrap,
)
from tests.test_batches import ITEM, client, complete, tag_result  # noqa: F401 - fixture

LONG_EN = ("So the first thing you notice when you open the box is how light it is, "
           "lighter than any phone I have carried in years, and the screen is bright")
LONG_ZH = ("今天给大家介绍一下我们店里最新上架的这款保温杯，"
           "它采用三层真空结构，保温时间长达二十四小时，"
           "而且杯盖可以单手打开，非常适合通勤和户外使用，现在下单还有限时优惠")


def spoken(moments=()) -> dict:
    result = TagResult.model_validate(tag_result(moments=moments))
    result.transcript = [
        TranscriptSegment(start_s=0.06, end_s=8.16, text=LONG_EN, speaker="A",
                          translation="打开盒子你首先注意到的是它有多轻"),
        TranscriptSegment(start_s=8.3, end_s=8.5, text="Yes!", speaker="B",
                          translation="是的！"),
        TranscriptSegment(start_s=9.0, end_s=20.0, text=LONG_ZH, speaker="A",
                          translation="Today I introduce our newest vacuum flask"),
    ]
    result.spoken_language, result.translated_to = "en", "zh"
    return result.model_dump(mode="json")


def parsed(text: str) -> list:
    return webvtt.from_buffer(io.StringIO(text)).captions


def test_wrap_keeps_lines_short_and_words_whole() -> None:
    lines = wrap(LONG_EN)
    assert all(len(line) <= MAX_LINE_CHARS for line in lines)
    assert " ".join(lines) == LONG_EN
    assert "".join(wrap(LONG_ZH)) == LONG_ZH and len(wrap(LONG_ZH)[0]) == MAX_LINE_CHARS
    assert wrap("   ") == []


def test_transcript_cues_are_the_segments_within_the_limits() -> None:
    result = TagResult.model_validate(spoken())
    found = cues(result)
    assert found[0][0] == 0.06 and found[0][2].startswith("A: So the first thing")
    assert any(text == "B: Yes!" for _, _, text in found)
    for start, end, text in found:
        assert end - start >= MIN_CUE_S
        assert len(text.split("\n")) <= MAX_LINES
        assert all(len(line) <= MAX_LINE_CHARS for line in text.split("\n"))
    said = " ".join(text.replace("\n", " ") for _, _, text in found)
    assert LONG_EN in said.replace("A: ", "")
    assert found[-1][1] >= 20.0 - 0.01  # the last segment's time is used up


def test_one_speaker_is_not_named() -> None:
    result = TagResult.model_validate(spoken())
    result.transcript = [s for s in result.transcript if s.speaker == "A"]
    assert not any(text.startswith("A: ") for _, _, text in cues(result))


def test_the_api_answers_the_transcript_by_default(client) -> None:  # noqa: F811
    task_id = client.post("/api/v1/task/create", json=ITEM).get_json()["task_id"]
    moments = [KeyMoment(start_s=1, end_s=2, description="画面文字：限时优惠", tags=["限时优惠"],
                         source="text"),
               KeyMoment(start_s=3, end_s=4, description="开箱")]
    complete(get_services(), task_id, spoken(moments))
    vtt = client.get(f"/api/v1/task/{task_id}/subtitles.vtt")
    assert vtt.status_code == 200
    captions = parsed(vtt.get_data(as_text=True))
    assert len(captions) >= 4 and captions[0].start == "00:00:00.060"
    assert all(len(c.lines) <= MAX_LINES and c.end_in_seconds - c.start_in_seconds >= 1
               for c in captions)
    srt = client.get(f"/api/v1/task/{task_id}/subtitles.srt?kind=transcript")
    assert srt.get_data(as_text=True).startswith("1\n00:00:00,060 --> ")
    text = parsed(client.get(f"/api/v1/task/{task_id}/subtitles.vtt?kind=text")
                  .get_data(as_text=True))
    assert [c.text for c in text] == ["画面文字：限时优惠"]
    moments_only = parsed(client.get(f"/api/v1/task/{task_id}/subtitles.vtt?kind=moments")
                          .get_data(as_text=True))
    assert [c.text for c in moments_only] == ["画面文字：限时优惠", "开箱"]
    translated = parsed(client.get(f"/api/v1/task/{task_id}/subtitles.vtt?kind=translation")
                        .get_data(as_text=True))
    assert translated[0].text == "A: 打开盒子你首先注意到的是它有多轻"


@pytest.mark.parametrize(("query", "status", "says"), [
    ("kind=words", 400, "kind: "),
    ("kind=transcript&kind=text", 400, "kind: "),
    ("lang=en", 400, "lang: unknown parameter"),
    ("kind=translation", 404, "kind: this result has no translation"),
])
def test_bad_subtitle_queries(client, query: str, status: int, says: str) -> None:  # noqa: F811
    task_id = client.post("/api/v1/task/create", json=ITEM).get_json()["task_id"]
    complete(get_services(), task_id)
    answer = client.get(f"/api/v1/task/{task_id}/subtitles.vtt?{query}")
    assert answer.status_code == status and answer.get_json()["message"].startswith(says), \
        answer.get_json()


def test_a_result_without_a_transcript_gives_an_empty_transcript_file() -> None:
    result = TagResult.model_validate(tag_result())
    assert render_subtitles(result, "vtt", "transcript") == "WEBVTT\n"
    assert parsed(render_subtitles(result, "vtt", "transcript")) == []


def test_translate_to_is_kept_on_the_task(client) -> None:  # noqa: F811
    created = client.post("/api/v1/task/create", json={**ITEM, "translate_to": "en"})
    task = client.get(f"/api/v1/task/{created.get_json()['task_id']}").get_json()["data"]
    assert task["translate_to"] == "en"
    refused = client.post("/api/v1/task/create", json={**ITEM, "translate_to": "de"})
    assert refused.status_code == 400
    assert refused.get_json()["message"] == ("translate_to: unsupported language 'de' "
                                             "(supported: zh, en)")
