"""The controlled vocabulary: synonyms become canonical tags, closed fields take only their
list, and a bad vocabulary file stops start-up naming the entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.config import ConfigError, load_settings
from shared.services import check_vocabulary
from shared.tagging import taxonomy
from tests.test_gemini import make_tagger, pool, request_for  # noqa: F401


def test_synonyms_become_one_canonical_tag(pool, standin, media_dir) -> None:  # noqa: F811
    standin.answers["vision.characters"] = [
        {"tag": "女生", "confidence": 0.8}, {"tag": "女人", "confidence": 0.9},
        {"tag": "路人甲", "confidence": 0.5}]
    result = make_tagger(pool, standin).tag(request_for(media_dir / "clip.mp4", ["vision"]))
    characters = result.dimensions["vision"]["characters"]
    assert [(t.tag, t.confidence, t.free) for t in characters] == [
        ("女性", 0.9, False), ("路人甲", 0.5, True)]
    assert result.tags.count("女性") == 1 and "女生" not in result.tags


def test_a_closed_field_is_an_enum_and_never_holds_anything_else(
        pool, standin, media_dir) -> None:  # noqa: F811
    standin.answers["content.emotion"] = [
        {"tag": "开心", "confidence": 0.9}, {"tag": "无聊透顶", "confidence": 0.8}]
    result = make_tagger(pool, standin).tag(request_for(media_dir / "clip.mp4", ["content"]))
    schema = standin.generate_calls()[-1].body["generationConfig"]
    schema = schema.get("responseSchema") or schema.get("response_schema")
    emotion = schema["properties"]["content"]["properties"]["emotion"]["items"]
    allowed = emotion["properties"]["tag"]["enum"]
    assert "欢快" in allowed and "开心" not in allowed
    assert [t.tag for t in result.dimensions["content"]["emotion"]] == ["欢快"]
    assert all(t.tag in allowed for t in result.dimensions["content"]["emotion"])
    instructions = standin.generate_calls()[-1].body["contents"][0]["parts"][0]["text"]
    assert "优先使用这些标准标签" in instructions and "content.emotion: 欢快" in instructions


def test_english_results_use_the_english_vocabulary() -> None:
    vocabulary = taxonomy.load()
    from shared.tagging.result import Tag

    tags = vocabulary.normalise("vision", "characters", "en",
                                [Tag(tag="Girl", confidence=0.7), Tag(tag="woman",
                                                                      confidence=0.6)])
    assert [(t.tag, t.confidence) for t in tags] == [("woman", 0.7)]


def test_a_tag_through_a_vocabulary_keeps_what_it_says_about_itself() -> None:
    """A keyword read on screen in another language stays marked so when the caller's
    vocabulary names its field (what the offline tagger does with it)."""
    from shared.tagging import vocabulary
    from shared.tagging.result import Tag

    read = Tag(tag="年货节", confidence=0.8, read=True, lang="zh")
    given = vocabulary.parse({"content.theme": ["年货节", "春节"]})
    [kept] = vocabulary.apply({"content": {"theme": [read]}}, given, "en")["content"]["theme"]
    assert (kept.tag, kept.free, kept.read, kept.lang) == ("年货节", False, True, "zh")


@pytest.mark.parametrize(("content", "named"), [
    ({"visuals": {"scene": {"zh": {"室内": []}}}}, "unknown dimension 'visuals'"),
    ({"vision": {"scenery": {"zh": {"室内": []}}}}, "vision.scenery: unknown field"),
    ({"vision": {"characters": {"zh": {"女性": ["女生"], "女孩": ["女生"]}}}},
     "'女生' is a synonym of both '女性' and '女孩'"),
    ({}, "empty"),
    ({"vision": {"characters": {"zh": {}}}}, "vision.characters.zh: empty"),
    ({"vision": {"characters": {"closed": "yes", "zh": {"女性": []}}}}, "closed must be"),
    ({"vision": {"characters": {"zh": {"女性": "女生"}}}}, "synonyms must be a list"),
])
def test_a_bad_vocabulary_stops_start_up_naming_the_entry(tmp_path: Path, content,
                                                         named: str) -> None:
    path = tmp_path / "taxonomy.json"
    path.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        check_vocabulary(load_settings(TAXONOMY_FILE=str(path)))
    assert "TAXONOMY_FILE" in str(caught.value) and named in str(caught.value)


def test_a_missing_or_broken_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    for path in (tmp_path / "missing.json", tmp_path / "bad.json"):
        with pytest.raises(ConfigError) as caught:
            check_vocabulary(load_settings(TAXONOMY_FILE=str(path)))
        assert str(path) in str(caught.value)


def test_the_shipped_vocabulary_loads() -> None:
    vocabulary = taxonomy.load()
    assert vocabulary.enum("content", "emotion", "zh")[0] == "欢快"
    assert vocabulary.enum("vision", "characters", "zh") is None  # open field
