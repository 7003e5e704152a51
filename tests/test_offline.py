"""The offline tagger's understanding on generated, labelled media: on-screen text (OCR),
its keywords and marketing cues, speech — no key, no network, models from the wheels."""

from __future__ import annotations

import re
import sys
import unicodedata
from pathlib import Path

import pytest

from scripts.sample_video import make_video
from shared.tagging.base import TagRequest
from shared.tagging.local import LocalTagger
from shared.video.frames import extract_frames
from shared.video.probe import probe
from tests.media import caption_clip, ffmpeg, sound_clip

ALL = ["vision", "audio", "content", "business"]


def tag(path: Path, tmp: Path, dimensions: list[str] = ALL, language: str = "zh"):
    media = probe(path)
    frames = extract_frames(path, tmp / f"frames-{path.stem}", media.duration_s) \
        if media.has_video else None
    request = TagRequest(path, media, dimensions, language,
                         tuple(frames.frames) if frames else (),
                         frames.scene_changes if frames else None)
    return LocalTagger().tag(request), frames


def distance(a: str, b: str) -> int:
    """Levenshtein edit distance."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def plain(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split()).lower()


CAPTIONS = [  # (text, size, colour, x, y, start, end, frame size)
    ("限时优惠 全场五折", 44, "white", "(w-tw)/2", "h-th-40", 0, 6, "640x360"),
    ("今天教大家做红烧肉", 36, "yellow", "40", "40", 0, 6, "640x360"),
    ("新品上市 欢迎选购", 52, "white", "(w-tw)/2", "(h-th)/2", 0, 6, "640x360"),
    ("关注我 每天分享好物", 32, "0xffcc00", "(w-tw)/2", "h-th-30", 0, 6, "360x640"),
    ("春季新款连衣裙", 48, "white", "30", "200", 0, 6, "360x640"),
    ("第一步 准备食材", 40, "white", "(w-tw)/2", "h-th-40", 0, 3, "640x360"),
    ("健身打卡第三十天", 36, "0x00ffcc", "(w-tw)/2", "60", 2, 6, "640x360"),
    ("周末去哪儿玩", 56, "white", "(w-tw)/2", "(h-th)/2", 0, 6, "640x360"),
    ("手机摄影小技巧", 44, "yellow", "(w-tw)/2", "h-th-60", 0, 6, "360x640"),
    ("宝宝辅食怎么做", 40, "white", "20", "h-th-20", 0, 6, "640x360"),
    ("Summer Sale Today", 44, "white", "(w-tw)/2", "h-th-40", 0, 6, "640x360"),
    ("How to make coffee", 36, "yellow", "40", "40", 0, 6, "640x360"),
    ("New arrivals every week", 32, "white", "(w-tw)/2", "(h-th)/2", 0, 6, "640x360"),
    ("Follow for more tips", 40, "0xffcc00", "(w-tw)/2", "h-th-30", 0, 6, "360x640"),
    ("Step two mix the flour", 30, "white", "20", "100", 0, 3, "640x360"),
    ("Morning workout routine", 34, "0x00ffcc", "(w-tw)/2", "60", 3, 6, "640x360"),
    ("Travel guide Paris", 50, "white", "(w-tw)/2", "(h-th)/2", 0, 6, "640x360"),
    ("Best budget phones", 42, "yellow", "(w-tw)/2", "h-th-60", 0, 6, "640x360"),
    ("好物推荐 Good stuff", 40, "white", "(w-tw)/2", "h-th-40", 0, 6, "640x360"),
    ("年货节 Lucky deals", 44, "white", "(w-tw)/2", "(h-th)/2", 0, 6, "640x360"),
]


@pytest.mark.slow
def test_on_screen_text_is_read_accurately_with_its_time_range(tmp_path: Path) -> None:
    errors = length = 0
    ranges_ok = 0
    for index, (text, size, colour, x, y, start, end, frame) in enumerate(CAPTIONS):
        clip = caption_clip(tmp_path / f"c{index}.mp4", [
            {"text": text, "size": size, "colour": colour, "x": x, "y": y,
             "start": start, "end": end}], size=frame)
        result, frames = tag(clip, tmp_path, ["content"])
        found = result.dimensions["content"]["on_screen_text"]
        best = min(found, key=lambda t: distance(plain(t.tag), plain(text)), default=None)
        errors += distance(plain(best.tag), plain(text)) if best else len(plain(text))
        length += len(plain(text))
        times = sorted(f.t_s for f in frames.frames)
        interval = max(b - a for a, b in zip(times, times[1:], strict=False)) if len(times) > 1 \
            else 6
        moment = next((m for m in result.key_moments if best and best.tag in m.tags), None)
        if moment and abs(moment.start_s - start) <= interval + 0.05 \
                and abs(moment.end_s - end) <= interval + 0.05:
            ranges_ok += 1
    accuracy = 1 - errors / length
    print(f"character accuracy {accuracy:.3f} over {length} characters; "
          f"time ranges right {ranges_ok}/{len(CAPTIONS)}")
    assert accuracy >= 0.90
    assert ranges_ok == len(CAPTIONS)


SOUNDS = [
    ("speech", "大家好，欢迎来到我的频道，今天给大家介绍一款新产品", "cmn"),
    ("speech", "这个方法非常简单，只需要三个步骤就可以完成", "cmn"),
    ("speech", "点击下方链接购买，限时优惠只有今天", "cmn"),
    ("speech", "我们一起来看看这道菜怎么做吧", "yue"),
    ("speech", "Hello everyone and welcome back to my channel", "en"),
    ("speech", "Today I will show you three easy ways to save money", "en-us"),
    ("speech", "Click the link below to get fifty percent off", "en"),
    ("speech", "Let us start with the first step of the recipe", "en-gb"),
    ("tone", "", ""), ("low_tone", "", ""), ("chord", "", ""), ("melody", "", ""),
    ("pink", "", ""), ("white", "", ""), ("brown", "", ""),
    ("silence", "", ""), ("silence", "", ""), ("silence", "", ""),
    ("tone", "", ""), ("melody", "", ""),
]


@pytest.mark.slow
def test_speech_or_not_is_right_on_at_least_18_of_20(tmp_path: Path) -> None:
    right = 0
    for index, (kind, text, voice) in enumerate(SOUNDS):
        wav = sound_clip(tmp_path / f"s{index}.wav", kind, text, voice)
        result, _ = tag(wav, tmp_path, ["audio"])
        speech = [t.tag for t in result.dimensions["audio"]["speech"]]
        right += ("人声" in speech) == (kind == "speech")
        if kind == "silence":
            assert speech == ["静音"]
    print(f"speech / no speech right on {right}/{len(SOUNDS)}")
    assert right >= 18


def test_a_promotion_on_screen_is_a_marketing_cue(tmp_path: Path) -> None:
    clip = caption_clip(tmp_path / "promo.mp4", [
        {"text": "限时优惠 ¥99 包邮", "size": 48, "start": 0, "end": 4}], seconds=4)
    result, _ = tag(clip, tmp_path)
    marketing = [t.tag for t in result.dimensions["business"]["marketing"]]
    assert {"价格", "促销优惠", "包邮", "限时"} <= set(marketing)
    assert "提到价格" in result.summary and "画面文字" in result.summary
    english, _ = tag(clip, tmp_path, ["business"], language="en")
    assert {"price", "promotion"} <= {t.tag for t in english.dimensions["business"]["marketing"]}


def test_no_text_and_no_sound_invents_nothing(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "plain.mp4", seconds=3, size="320x240", audio=False,
                      source="color=c=blue")
    result, _ = tag(clip, tmp_path)
    assert result.dimensions["content"]["on_screen_text"] == []
    assert result.dimensions["content"]["theme"] == []
    assert result.dimensions["business"]["marketing"] == []
    assert result.dimensions["audio"]["speech"] == []
    assert not result.key_moments


def test_a_wav_gets_the_audio_dimension_only(tmp_path: Path) -> None:
    wav = sound_clip(tmp_path / "voice.wav", "speech", "你好，欢迎收看今天的节目", "cmn")
    result, _ = tag(wav, tmp_path, ["audio"])
    assert set(result.dimensions) == {"audio"}
    assert "人声" in [t.tag for t in result.dimensions["audio"]["speech"]]
    assert result.technical.speech_ratio > 0.5 and result.technical.loudness_db < 0
    assert result.key_moments and result.key_moments[0].description == "人声"
    assert result.key_moments[0].source == "speech"
    assert result.transcript == [] and result.spoken_language is None
    assert [w.split(":")[0] for w in result.warnings] == [
        f"speech heard ({len(result.key_moments)} segment(s)) but not transcribed"]


def test_the_offline_tagger_says_it_cannot_translate(tmp_path: Path) -> None:
    """Issue 38: no speech recognition offline; a translation asked for is said ignored."""
    import dataclasses

    wav = sound_clip(tmp_path / "voice.wav", "speech", "Hello and welcome", "en")
    media = probe(wav)
    result = LocalTagger().tag(dataclasses.replace(
        TagRequest(wav, media, ["audio"], "en"), translate_to="zh"))
    assert "人声" not in result.tags and "voice" in result.tags
    assert any(w.startswith("speech heard") for w in result.warnings)
    assert any(w.startswith("translate_to ignored") for w in result.warnings)
    assert result.prompt_version.endswith("-trzh")


def test_a_one_frame_video(tmp_path: Path) -> None:
    clip = caption_clip(tmp_path / "long.mp4", [
        {"text": "一帧画面", "size": 48, "start": 0, "end": 1}], seconds=1)
    one = tmp_path / "one.mp4"
    ffmpeg("-i", str(clip), "-frames:v", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           str(one))
    result, _ = tag(one, tmp_path, ["content"])
    assert [t.tag for t in result.dimensions["content"]["on_screen_text"]] == ["一帧画面"]


def test_unreadable_noise_gives_no_garbage_text(tmp_path: Path) -> None:
    noisy = tmp_path / "noise.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:size=640x360:duration=4:rate=25",
           "-vf", "noise=alls=100:allf=t+u", "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p", str(noisy))
    result, _ = tag(noisy, tmp_path, ["content", "business"])
    assert result.dimensions["content"]["on_screen_text"] == []
    assert result.dimensions["business"]["marketing"] == []


def test_gemini_mode_loads_none_of_it() -> None:
    """The worker in Gemini mode imports no OCR, ONNX, OpenCV, jieba or VAD module."""
    import subprocess

    code = ("import sys; import main; from shared.tagging.gemini import GeminiTagger; "
            "heavy = [m for m in ('rapidocr_onnxruntime', 'onnxruntime', 'cv2', 'jieba', "
            "'webrtcvad', 'numpy', 'shared.tagging.offline', 'shared.tagging.ocr') "
            "if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"TAGGER": "gemini", "PATH": "/usr/bin:/bin"},
                         cwd=Path(__file__).resolve().parent.parent)
    assert run.returncode == 0, run.stdout + run.stderr[-500:]


def test_a_cached_result_keeps_what_the_tagger_measured(sqlite_services, media_server) -> None:
    """The result cache answers the second task; loudness and speech ratio stay."""
    from shared.app.tasks import create_task
    from shared.pipeline.runner import handle_delivery
    from shared.tasks.models import CreateTaskRequest

    def run() -> dict:
        request = CreateTaskRequest.model_validate(
            {"url": media_server.url("files/clip.mp4"), "platform": "rpa"},
            context={"platforms": ["rpa"]})
        task_id = create_task(sqlite_services, request)[0].task_id
        handle_delivery(task_id, sqlite_services.worker)
        return sqlite_services.store.get(task_id).result

    first, second = run(), run()
    assert second.cached and not first.cached
    assert second.technical.loudness_db == first.technical.loudness_db is not None
    assert second.technical.speech_ratio == first.technical.speech_ratio


@pytest.mark.parametrize(("text", "noise"), [
    ("09:00:66.960", True), ("124", True), ("27M", True), ("474", True), ("x", True),
    ("¥99", False), ("50%", False), ("限时", False), ("Sale", False), ("好物推荐 Good", False),
])
def test_timecodes_numbers_and_short_garbage_are_noise(text: str, noise: bool) -> None:
    from shared.tagging.offline import is_noise

    assert is_noise(text) is noise


def test_a_caption_read_twice_slightly_differently_is_one_line() -> None:
    from shared.tagging.offline import TextSpan, _same_line

    spans = [TextSpan("限时优惠¥99", 0.9, 0.0, 0.0)]
    assert _same_line(spans, "限时优惠?99") is spans[0]
    assert _same_line(spans, "全场五折 包邮") is None
    assert _same_line([TextSpan("AB", 0.9, 0, 0)], "AC") is None  # too short to guess


QUOTES = "“”‘’\"「」『』"


def chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_words_read_in_another_language_are_marked_not_quoted(tmp_path: Path) -> None:
    clip = caption_clip(tmp_path / "en.mp4", [
        {"text": "年货节 Lucky deals", "size": 44, "colour": "white", "x": "(w-tw)/2",
         "y": "(h-th)/2", "start": 0, "end": 6}], size="640x360")
    english, _ = tag(clip, tmp_path, ["content"], language="en")
    theme = {t.tag: t for t in english.dimensions["content"]["theme"]}
    assert "lucky" in theme and theme["lucky"].read and theme["lucky"].lang is None
    foreign = [t for t in theme.values() if chinese(t.tag)]
    assert foreign and all(t.read and t.lang == "zh" and not t.free for t in foreign)
    assert not any(set(t.tag) & set(QUOTES) for t in theme.values())
    [line] = english.dimensions["content"]["on_screen_text"]
    assert line.read and line.lang is None  # both languages: neither is foreign to it
    assert english.model_dump(mode="json")["dimensions"]["content"]["theme"][0].keys() == {
        "tag", "confidence", "free", "read", "lang"}
    chinese_result, _ = tag(clip, tmp_path, ["content"])
    theme = {t.tag: t for t in chinese_result.dimensions["content"]["theme"]}
    assert theme["lucky"].lang == "en"
    native = [t for t in theme.values() if chinese(t.tag)]
    assert native and all(t.read and t.lang is None for t in native)
    narrative = chinese_result.dimensions["content"]["narrative"]
    assert narrative and not any(t.read or t.lang for t in narrative)


PROMOTION = "50% OFF - BUY NOW - FREE SHIPPING"


def test_english_on_screen_text_keeps_its_word_spaces_and_cues(tmp_path: Path) -> None:
    clip = caption_clip(tmp_path / "promo-en.mp4", [
        {"text": PROMOTION, "size": 32, "start": 0, "end": 6}])
    result, _ = tag(clip, tmp_path, ["content", "business"], language="en")
    assert [t.tag for t in result.dimensions["content"]["on_screen_text"]] == [PROMOTION]
    marketing = {t.tag for t in result.dimensions["business"]["marketing"]}
    assert {"promotion", "call to action", "free shipping"} <= marketing
    theme = [t.tag for t in result.dimensions["content"]["theme"]]
    assert "shipping" in theme and all(re.fullmatch("[a-z]+", word) for word in theme), theme
    assert "mentions promotion, free shipping, call to action" in result.summary


@pytest.mark.parametrize("text", [PROMOTION, "50%OFF-BUYNOW-FREESHIPPING",
                                  "50 % off, buy-now, free  shipping"])
def test_cues_are_found_with_or_without_the_spaces(text: str) -> None:
    from shared.tagging.offline import marketing_cues

    assert [tag for _, tag in marketing_cues([text], "en")] == [
        "promotion", "free shipping", "call to action"]


def test_a_cue_is_not_made_of_two_lines() -> None:
    from shared.tagging.offline import marketing_cues

    assert marketing_cues(["BUY", "NOW"], "en") == []


@pytest.mark.parametrize(("line", "read"), [
    ([("A", 0), ("", 0.05), ("B", 0)], "A B"),  # a word gap the recogniser ranked below blank
    ([("A", 0), ("", 0.001), ("B", 0)], "AB"),  # two letters of one word
    ([("W", 0), ("", 0.004), ("-", 0), ("", 0.004), ("F", 0)], "W - F"),  # a spaced dash
    ([("T", 0), ("", 0.0005), ("-", 0), ("", 0.0005), ("S", 0)], "T-S"),  # a hyphen
    ([("限", 0), ("", 0.3), ("时", 0)], "限时"),  # Chinese is written without spaces
    ([("时", 0), ("", 0.3), ("A", 0)], "时A"),  # and so is its boundary with Latin
    ([("A", 0), ("", 0.9), ("B", 0)], "A B"),  # a space the recogniser wrote is kept
    ([("A", 0), ("", 0.05), ("", 0.05), ("B", 0)], "A B"),  # one space for a wide gap
])
def test_the_recogniser_writes_the_word_spaces_it_sees(line: list[tuple[str, float]],
                                                       read: str) -> None:
    """The loaded engine's decoder on (character, space probability) columns: the
    character (or blank, for "") takes the rest of each column's probability."""
    import numpy as np

    from shared.tagging.ocr import engine

    spaces = engine().text_rec.postprocess_op
    probs = np.zeros((1, len(line), len(spaces.decode.character)), dtype=np.float32)
    for column, (char, space) in enumerate(line):
        probs[0, column, spaces.space] = space
        probs[0, column, spaces.decode.dict.get(char, 0)] += 1 - space
    [(text, confidence)] = spaces(probs)
    assert text == read and confidence > 0.5


def test_a_caption_moment_ends_when_the_caption_leaves(tmp_path: Path) -> None:
    clip = caption_clip(tmp_path / "leave.mp4", [
        {"text": "第一步 准备食材", "size": 40, "colour": "white", "x": "(w-tw)/2",
         "y": "h-th-40", "start": 0, "end": 3}], size="640x360")
    result, frames = tag(clip, tmp_path, ["content"])
    moment = next(m for m in result.key_moments if m.tags and "准备" in m.tags[0])
    seen = [f.t_s for f in frames.frames if f.t_s < 3]
    without = [f.t_s for f in frames.frames if f.t_s >= 3]
    assert moment.end_s == without[0] and moment.end_s > max(seen)
