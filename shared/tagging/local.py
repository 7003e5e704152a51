"""LocalTagger: offline tags measured from the file and its key frames (no key, no
network): picture, pace and sound from ffmpeg; on-screen text (OCR), its keywords and
marketing cues, and speech (voice activity) from models shipped in their wheels
(`offline.py`, imported only here). Confidences reflect how clear each measurement is;
results say `provider: local`."""

from __future__ import annotations

from dataclasses import dataclass

from shared.tagging import vocabulary
from shared.tagging.base import TagRequest, request_fingerprint
from shared.tagging.result import (
    SUBCATEGORIES,
    KeyMoment,
    Tag,
    TagResult,
    Usage,
    flatten_tags,
    technical_of,
)
from shared.tagging.visual import COLOUR_NAMES, VisualStats, visual_stats
from shared.video.probe import MediaInfo

LABELS = {
    "zh": {
        "portrait": "竖屏", "landscape": "横屏", "square": "方形画面",
        "4k": "4K超高清", "1080p": "1080p全高清", "720p": "720p高清", "sd": "标清",
        "short": "短视频(≤15秒)", "minute": "短视频(≤1分钟)", "medium": "中视频(≤10分钟)",
        "long": "长视频", "sound": "有声", "silent": "无声", "audio_only": "纯音频",
        "bright": "明亮画面", "dark": "暗调画面", "tone": "{colour}调",
        "dynamic": "画面变化大", "static": "静态画面", "fast": "快节奏剪辑",
        "slow": "慢节奏", "summary": "{duration}秒{orientation}视频，{resolution}，{sound}",
        "summary_colour": "，以{colour}为主",
        "voice": "人声", "voiceover": "口播", "no_speech": "无人声", "silence": "静音",
        "speech_moment": "人声", "text_moment": "画面文字：{text}",
        "summary_voiceover": "口播", "summary_text": "，画面文字：{text}",
        "summary_cues": "，提到{cues}", "cue_join": "、", "comma": "，",
    },
    "en": {
        "portrait": "portrait", "landscape": "landscape", "square": "square frame",
        "4k": "4K UHD", "1080p": "1080p full HD", "720p": "720p HD", "sd": "SD",
        "short": "short video (≤15 s)", "minute": "short video (≤1 min)",
        "medium": "medium video (≤10 min)", "long": "long video", "sound": "with sound",
        "silent": "silent", "audio_only": "audio only", "bright": "bright",
        "dark": "low-key lighting", "tone": "{colour} tones", "dynamic": "lots of movement",
        "static": "static shots", "fast": "fast-paced editing", "slow": "slow-paced",
        "summary": "{duration} s {orientation} video, {resolution}, {sound}",
        "summary_colour": ", mostly {colour}",
        "voice": "voice", "voiceover": "voice-over", "no_speech": "no speech",
        "silence": "silence", "speech_moment": "speech", "text_moment": "on screen: {text}",
        "summary_voiceover": "voice-over", "summary_text": ", on screen: {text}",
        "summary_cues": ", mentions {cues}", "cue_join": ", ", "comma": ", ",
    },
}


def resolution_class(media: MediaInfo) -> str | None:
    if not media.width or not media.height:
        return None
    short_side = min(media.width, media.height)
    if short_side >= 2160:
        return "4k"
    if short_side >= 1080:
        return "1080p"
    if short_side >= 720:
        return "720p"
    return "sd"


def duration_class(seconds: float) -> str:
    if seconds <= 15:
        return "short"
    if seconds <= 60:
        return "minute"
    if seconds <= 600:
        return "medium"
    return "long"


class LocalTagger:
    provider = "local"
    needs_quota = False
    model = "local-visual-v1"
    prompt_version = "read-3"
    """Part of the result-cache key: a result read with older rules (words run together,
    quoted Chinese keywords, moments without their `source`) is not served again."""

    def check_quota(self) -> None:
        """The local tagger has no quota."""

    def tag(self, request: TagRequest) -> TagResult:
        media = request.media
        words = LABELS.get(request.language, LABELS["zh"])
        stats = visual_stats([frame.path for frame in request.frames]) if request.frames else None
        found = self._measured(request, words, stats)
        heard = understood = None
        if {"content", "business"} & set(request.dimensions) and request.frames:
            understood = understand_text(request, words)
            for slot, tags in understood.tags.items():
                found.setdefault(slot, []).extend(tags)
        if "audio" in request.dimensions and media.has_audio:
            heard = hear(request, words)
            found[("audio", "speech")] = heard.tags
        dimensions = vocabulary.apply({
            dim: {sub: found.get((dim, sub), []) for sub in SUBCATEGORIES[dim]}
            for dim in request.dimensions
        }, request.vocabulary, request.language)
        technical = technical_of(media)
        if heard is not None:
            technical.loudness_db = heard.report.mean_db
            technical.peak_db = heard.report.max_db
            technical.speech_ratio = heard.report.speech_ratio
        summary = self._summary(media, words, stats, request.language)
        summary += _summary_tail(words, heard, understood)
        return TagResult(
            tags=flatten_tags(dimensions),
            dimensions=dimensions,
            key_moments=sorted([*(understood.moments if understood else []),
                                *(heard.moments if heard else [])],
                               key=lambda moment: moment.start_s),
            summary=summary,
            technical=technical,
            language=request.language,
            provider=self.provider,
            model=self.model,
            prompt_version=self.prompt_version + request_fingerprint(request),
            usage=Usage(), warnings=_untranscribed(heard, request.translate_to),
        )

    def _measured(self, request: TagRequest, words: dict[str, str],
                  stats: VisualStats | None) -> dict[tuple[str, str], list[Tag]]:
        media = request.media
        picture: list[Tag] = []
        if media.has_video:
            picture += [Tag(tag=words[name], confidence=1.0)
                        for name in (media.orientation, resolution_class(media)) if name]
        if stats is not None:
            if stats.brightness > 0.65:
                picture.append(Tag(tag=words["bright"], confidence=round(stats.brightness, 2)))
            elif stats.brightness < 0.3:
                picture.append(Tag(tag=words["dark"], confidence=round(1 - stats.brightness, 2)))
            colour_names = COLOUR_NAMES[request.language]
            picture += [Tag(tag=words["tone"].format(colour=colour_names[name]),
                            confidence=round(share, 2))
                        for name, share in stats.colours if share >= 0.25]
            if stats.motion is not None and stats.motion > 0.15:
                picture.append(Tag(tag=words["dynamic"], confidence=0.8))
            elif stats.motion is not None and stats.motion < 0.03:
                picture.append(Tag(tag=words["static"], confidence=0.8))
        narrative = [Tag(tag=words[duration_class(media.duration_s)], confidence=1.0)]
        cuts = request.scene_changes
        if cuts is not None and media.duration_s >= 10:
            per_minute = cuts / media.duration_s * 60
            if per_minute >= 10:
                narrative.append(Tag(tag=words["fast"], confidence=0.7))
            elif per_minute <= 1 and media.duration_s >= 20:
                narrative.append(Tag(tag=words["slow"], confidence=0.6))
        sound = (words["audio_only"] if not media.has_video
                 else words["sound"] if media.has_audio else words["silent"])
        return {
            ("vision", "cinematography"): picture,
            ("content", "narrative"): narrative,
            ("audio", "sound_effects"): [Tag(tag=sound, confidence=1.0)],
        }

    def _summary(self, media: MediaInfo, words: dict[str, str], stats: VisualStats | None,
                 language: str) -> str:
        if not media.has_video:
            return f"{media.duration_s:g} s {words['audio_only']}" if language == "en" else \
                f"{media.duration_s:g}秒{words['audio_only']}"
        text = words["summary"].format(
            duration=f"{media.duration_s:g}",
            orientation=words.get(media.orientation or "", ""),
            resolution=words.get(resolution_class(media) or "", ""),
            sound=words["sound"] if media.has_audio else words["silent"],
        )
        if stats and stats.colours and stats.colours[0][1] >= 0.25:
            text += words["summary_colour"].format(
                colour=COLOUR_NAMES[language][stats.colours[0][0]])
        return text


@dataclass
class Understood:
    """On-screen text and what it is about."""

    tags: dict[tuple[str, str], list[Tag]]
    moments: list[KeyMoment]
    texts: list[str]
    cues: list[str]


@dataclass
class Heard:
    report: object
    tags: list[Tag]
    moments: list[KeyMoment]
    voiceover: bool


MAX_TEXT_MOMENTS = 8
MAX_SPEECH_MOMENTS = 3


def understand_text(request: TagRequest, words: dict[str, str]) -> Understood:
    """OCR on the key frames → content.on_screen_text, content.theme (keywords),
    business.marketing (prices, promotions, calls to action), key moments."""
    from shared.tagging import offline

    spans = offline.read_text([(frame.t_s, frame.path) for frame in request.frames],
                              request.media.duration_s)
    texts = [span.text for span in spans]
    cues = offline.marketing_cues(texts, request.language)
    tags = {
        ("content", "on_screen_text"): [_read(span.text, round(span.confidence, 2),
                                              request.language) for span in spans],
        ("content", "theme"): [_read(word, weight, request.language)
                               for word, weight in offline.keywords(texts)],
        ("business", "marketing"): [Tag(tag=tag, confidence=0.9) for _, tag in cues],
    }
    moments = [KeyMoment(start_s=span.start_s, end_s=span.end_s,
                         description=words["text_moment"].format(text=span.text),
                         tags=[span.text], source="text")
               for span in sorted(spans, key=lambda s: -s.confidence)[:MAX_TEXT_MOMENTS]]
    return Understood(tags, moments, texts, [tag for _, tag in cues])


def _read(text: str, confidence: float, language: str) -> Tag:
    """Text read on screen (a line or one of its keywords), as written: never translated,
    and marked with its own language where that is not the result's (a Chinese keyword
    in an English result) rather than passed off as a tag in the result's language."""
    from shared.tagging import offline

    written = offline.written_in(text)
    return Tag(tag=text, confidence=confidence, read=True,
               lang=written if written != language else None)


def hear(request: TagRequest, words: dict[str, str]) -> Heard:
    """Voice activity → audio.speech (人声/口播, 无人声, 静音) and the longest speech
    segments as key moments."""
    from shared.tagging import offline

    report = offline.listen(request.source.location, request.media.duration_s)
    if not report.has_sound:
        tags = [Tag(tag=words["silence"], confidence=1.0)]
    elif report.speech_ratio >= 0.5:
        tags = [Tag(tag=words["voice"], confidence=report.speech_ratio),
                Tag(tag=words["voiceover"], confidence=round(report.speech_ratio * 0.9, 2))]
    elif report.speech_ratio >= 0.1:
        tags = [Tag(tag=words["voice"], confidence=round(0.5 + report.speech_ratio, 2))]
    else:
        tags = [Tag(tag=words["no_speech"], confidence=round(1 - report.speech_ratio, 2))]
    moments = [KeyMoment(start_s=start, end_s=end, description=words["speech_moment"],
                         tags=[words["voice"]], source="speech")
               for start, end in report.segments[:MAX_SPEECH_MOMENTS]]
    return Heard(report, tags, moments, voiceover=report.speech_ratio >= 0.5)


UNTRANSCRIBED = ("speech heard ({segments} segment(s)) but not transcribed: the offline "
                 "tagger has no speech recognition (TAGGER=gemini writes the transcript)")
UNTRANSLATED = "translate_to ignored: the offline tagger writes no transcript to translate"


def _untranscribed(heard: Heard | None, translate_to: str | None) -> list[str]:
    """What the offline tagger cannot give where Gemini would: the words said."""
    warnings = []
    if heard is not None and heard.report.segments:
        warnings.append(UNTRANSCRIBED.format(segments=len(heard.report.segments)))
    if translate_to:
        warnings.append(UNTRANSLATED)
    return warnings


def _summary_tail(words: dict[str, str], heard: Heard | None,
                  understood: Understood | None) -> str:
    """What was found, appended to the measured sentence: voice-over, text, cues."""
    tail = ""
    if heard is not None and heard.voiceover:
        tail += words["comma"] + words["summary_voiceover"]
    if understood is not None and understood.texts:
        shown = words["cue_join"].join(understood.texts[:2])
        tail += words["summary_text"].format(text=shown[:40])
    if understood is not None and understood.cues:
        tail += words["summary_cues"].format(cues=words["cue_join"].join(understood.cues))
    return tail
