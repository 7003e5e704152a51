"""What the offline tagger understands without any API key, with models that ship inside
their wheels (nothing is downloaded at run time):

- on-screen text: RapidOCR (`ocr.py`) on the key frames, merged across frames with the
  time it was on screen;
- what the text is about: jieba keywords (its dictionary ships in the package) for
  Chinese, a stop-word filter for English; prices, discounts and calls to action;
- speech: WebRTC voice activity (`webrtcvad-wheels`, no model file) on 16 kHz mono PCM
  from ffmpeg, and the track's mean and peak level from the same PCM.

Imported only by `LocalTagger`, lazily: the Gemini worker never loads any of it.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
import subprocess
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import imageio_ffmpeg

from shared.tagging import ocr

MIN_TEXT_CONFIDENCE = 0.75
"""OCR lines below this are dropped: noise and textures read as garbage otherwise."""

MIN_TEXT_CHARS = 2
VAD_FRAME_MS = 30
VAD_MODE = 3
"""webrtcvad aggressiveness 0-3: 3 refuses the most non-speech (tones, noise)."""

SPEECH_MIN_SEGMENT_S = 0.3
SPEECH_GAP_S = 0.3
STATIONARY_CV = 0.35
NOISE_FLATNESS = 0.5
SILENCE_DB = -50.0
"""Below this peak level (dBFS) a track counts as silent."""


@dataclass
class TextSpan:
    """One piece of on-screen text and when it was seen (key-frame times)."""

    text: str
    confidence: float
    start_s: float
    end_s: float


@dataclass
class SpeechReport:
    has_sound: bool
    speech_ratio: float
    segments: list[tuple[float, float]] = field(default_factory=list)
    mean_db: float | None = None
    max_db: float | None = None


# --- on-screen text ------------------------------------------------------------------------


def normalise(text: str) -> str:
    """NFKC (full-width ￥ and digits become ¥ and ASCII), one space between words."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def _key(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


SAME_LINE_RATIO = 0.8
"""Two readings this similar (difflib ratio of their compact forms) are one caption read
twice (`…优惠¥99` and `…优惠?99`): one span, the more confident reading."""

_WORDISH = re.compile(r"[A-Za-z\u4e00-\u9fff\u3040-\u30ff\uac00-\ud7af]")
_MONEY = re.compile(r"[¥$€£%]|元|折")


def is_noise(text: str) -> bool:
    """Timecodes, bare numbers and short garbage (`09:00:66.960`, `124`, `27M`): fewer than
    two letters or CJK characters, and no price or percentage."""
    return len(_WORDISH.findall(text)) < MIN_TEXT_CHARS and not _MONEY.search(text)


def read_text(frames: Sequence[tuple[float, Path]],
              duration_s: float | None = None) -> list[TextSpan]:
    """Text on the key frames (time, path), merged: a line seen on several frames (or
    read slightly differently) is one span from the first frame it is on until the next
    key frame without it (the end of the video after the last frame); noise and lines
    below MIN_TEXT_CONFIDENCE are dropped."""
    engine = ocr.engine()
    if engine is None:
        return []
    frames = sorted(frames)
    spans: list[TextSpan] = []
    last_seen: dict[int, int] = {}  # id(span) → index of the last frame it was on
    for index, (t_s, path) in enumerate(frames):
        found, _ = engine(str(path))
        for _box, raw, score in found or []:
            text = normalise(raw)
            if score < MIN_TEXT_CONFIDENCE or len(_key(text)) < MIN_TEXT_CHARS \
                    or is_noise(text):
                continue
            span = _same_line(spans, text)
            if span is None:
                span = TextSpan(text, float(score), t_s, t_s)
                spans.append(span)
            elif score > span.confidence:
                span.text, span.confidence = text, float(score)
            span.start_s = min(span.start_s, t_s)
            last_seen[id(span)] = max(last_seen.get(id(span), index), index)
    for span in spans:
        after = last_seen[id(span)] + 1
        span.end_s = frames[after][0] if after < len(frames) else max(
            duration_s or 0.0, frames[-1][0])
    return sorted(spans, key=lambda span: (span.start_s, span.text))


def _same_line(spans: list[TextSpan], text: str) -> TextSpan | None:
    key = _key(text)
    for span in spans:
        other = _key(span.text)
        if other == key or (min(len(other), len(key)) >= 4 and difflib.SequenceMatcher(
                None, other, key).ratio() >= SAME_LINE_RATIO):
            return span
    return None


# --- what the text is about ------------------------------------------------------------------

CJK = re.compile(r"[\u4e00-\u9fff]")
EN_STOP = frozenset("""a an and are as at be but by for from has have in into is it its of on or
our so than that the their them then there these this to up was we were what when which
who will with you your now off get all new more just only""".split())
LATIN = re.compile(r"[A-Za-z]")


def written_in(text: str) -> str | None:
    """The language of text read on screen, for tags to say when it is not the result's:
    `zh` for Chinese characters without Latin letters, `en` for Latin letters without
    Chinese characters; None for a mix, or for neither (`¥99`)."""
    chinese, latin = bool(CJK.search(text)), bool(LATIN.search(text))
    if chinese == latin:
        return None
    return "zh" if chinese else "en"


ENGLISH_WORD = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")
"""A word, hyphenated or with an apostrophe inside; a dash at its edge is not part of it
(`OFF- BUY`: `off`, `buy`)."""


def _phrases(*texts: str) -> str:
    """Each phrase as a pattern that matches it with or without the spaces (or dashes)
    between its words: captions are written both ways (`FREESHIPPING`) and a recogniser
    may not see every word gap."""
    return "|".join("[ -]*".join(map(re.escape, text.split())) for text in texts)


MARKETING = [
    ("price", re.compile(r"[¥$€£]\s*\d|\d+(\.\d+)?\s*(元|块|rmb|usd)|价格|售价|price", re.I),
     {"zh": "价格", "en": "price"}),
    ("discount", re.compile(r"\d+(\.\d+)?\s*折|优惠|特价|折扣|满减|立减|秒杀|\d+\s*%\s*off|sale|"
                            r"discount|deal", re.I), {"zh": "促销优惠", "en": "promotion"}),
    ("shipping", re.compile("包邮|免运费|" + _phrases("free shipping"), re.I),
     {"zh": "包邮", "en": "free shipping"}),
    ("urgency", re.compile("限时|限量|仅限|今日|最后|limited|"
                           + _phrases("today only", "last chance"), re.I),
     {"zh": "限时", "en": "limited time"}),
    ("call_to_action", re.compile("下单|购买|抢购|关注|点击|点赞|私信|follow|subscribe|click|"
                                  + _phrases("buy now", "order now", "shop now", "link in bio"),
                                  re.I),
     {"zh": "行动号召", "en": "call to action"}),
]
"""Marketing cues: (name, pattern, tag per language)."""


def marketing_cues(texts: Sequence[str], language: str) -> list[tuple[str, str]]:
    """(cue name, tag) for every cue found in the texts, in a stable order."""
    joined = "\n".join(texts)
    return [(name, tags.get(language, tags["zh"])) for name, pattern, tags in MARKETING
            if pattern.search(joined)]


def keywords(texts: Sequence[str], limit: int = 8) -> list[tuple[str, float]]:
    """Topic words with a confidence (their weight relative to the strongest one)."""
    joined = " ".join(texts)
    found: dict[str, float] = {}
    if CJK.search(joined):
        import jieba
        import jieba.analyse

        jieba.setLogLevel(logging.WARNING)
        for word, weight in jieba.analyse.extract_tags(joined, topK=limit, withWeight=True):
            if CJK.search(word) and len(word) >= 2:
                found[word] = weight
    for word in ENGLISH_WORD.findall(joined):
        lower = word.lower()
        if len(lower) >= 3 and lower not in EN_STOP:
            found[lower] = found.get(lower, 0.0) + 1.0
    if not found:
        return []
    top = max(found.values())
    ranked = sorted(found.items(), key=lambda item: -item[1])[:limit]
    return [(word, round(max(0.3, weight / top), 2)) for word, weight in ranked]


# --- speech and loudness -------------------------------------------------------------------


def listen(media_path: Path | str, duration_s: float) -> SpeechReport:
    """Voice activity over the whole track, and its loudness."""
    pcm = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i",
         str(media_path), "-vn", "-ac", "1", "-ar", "16000", "-f", "s16le", "-"],
        capture_output=True, check=False, timeout=max(60, duration_s * 2)).stdout
    mean_db, max_db = _loudness(pcm)
    has_sound = bool(pcm) and max_db is not None and max_db > SILENCE_DB
    if not has_sound:
        return SpeechReport(False, 0.0, [], mean_db, max_db)
    if _stationary(pcm):  # a tone, a chord, noise: webrtcvad alone would call it speech
        return SpeechReport(True, 0.0, [], mean_db, max_db)
    voiced = _voiced_frames(pcm)
    segments = _segments(voiced)
    ratio = sum(voiced) / len(voiced) if voiced else 0.0
    return SpeechReport(True, round(ratio, 3), segments, mean_db, max_db)


def _stationary(pcm: bytes) -> bool:
    """Speech comes in syllables: its loudness swings (coefficient of variation of 30 ms
    frame energy ≥ STATIONARY_CV) and its spectrum is far from flat. Tones and music hold
    a steady level; noise is flat. Measured on espeak-ng Mandarin and English, sine tones,
    chords, a melody and pink noise: speech 0.64-0.67, everything else ≤ 0.14."""
    import numpy as np

    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768
    size = 16000 * VAD_FRAME_MS // 1000
    frames = samples[: len(samples) // size * size].reshape(-1, size)
    if len(frames) < 10:
        return False
    rms = np.sqrt((frames ** 2).mean(axis=1)) + 1e-9
    active = rms > rms.max() * 0.05
    if active.sum() < 5:
        return True
    variation = float(rms[active].std() / rms[active].mean())
    spectrum = np.abs(np.fft.rfft(frames[active] * np.hanning(size), axis=1)) + 1e-9
    flatness = float(np.median(np.exp(np.log(spectrum).mean(axis=1)) / spectrum.mean(axis=1)))
    return variation < STATIONARY_CV or flatness > NOISE_FLATNESS


def _voiced_frames(pcm: bytes) -> list[bool]:
    import webrtcvad

    vad = webrtcvad.Vad(VAD_MODE)
    step = 16000 * VAD_FRAME_MS // 1000 * 2  # bytes per frame: 16-bit mono
    return [vad.is_speech(pcm[start:start + step], 16000)
            for start in range(0, len(pcm) - step + 1, step)]


def _segments(voiced: list[bool]) -> list[tuple[float, float]]:
    """Voiced runs, joined across short gaps, longest first."""
    frame_s = VAD_FRAME_MS / 1000
    runs: list[list[float]] = []
    for index, is_voiced in enumerate(voiced):
        if not is_voiced:
            continue
        t = index * frame_s
        if runs and t - runs[-1][1] <= SPEECH_GAP_S:
            runs[-1][1] = t + frame_s
        else:
            runs.append([t, t + frame_s])
    kept = [(round(a, 2), round(b, 2)) for a, b in runs if b - a >= SPEECH_MIN_SEGMENT_S]
    return sorted(kept, key=lambda run: run[0] - run[1])


def _loudness(pcm: bytes) -> tuple[float | None, float | None]:
    """(mean, peak) level in dBFS of the decoded track — what ffmpeg's volumedetect
    reports, measured on the PCM already decoded for the VAD; None without audio."""
    if len(pcm) < 2:
        return None, None
    import numpy as np

    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16).astype(np.float64)
    samples /= 32768
    rms, peak = float(np.sqrt(np.mean(samples ** 2))), float(np.max(np.abs(samples)))

    def db(level: float) -> float:
        return round(20 * math.log10(level), 1) if level > 0 else -120.0

    return db(rms), db(peak)
