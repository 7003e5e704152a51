"""LocalTagger: offline tags measured from the file and its key frames (no key, no
network). Everything it says is measured, so confidences reflect how clear the
measurement is, and results say `provider: local`."""

from __future__ import annotations

from shared.tagging.base import TagRequest
from shared.tagging.result import SUBCATEGORIES, Tag, TagResult, Technical, Usage, flatten_tags
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
    },
}


def technical_of(media: MediaInfo) -> Technical:
    """The `technical` block, computed locally whatever the tagger."""
    return Technical(
        duration_s=media.duration_s,
        width=media.width,
        height=media.height,
        fps=media.fps,
        orientation=media.orientation,
        has_audio=media.has_audio,
        has_video=media.has_video,
        container=media.container,
        video_codec=media.video_codec,
        audio_codec=media.audio_codec,
        rotation=media.rotation,
        bitrate_kbps=media.bitrate_kbps,
    )


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
    prompt_version = ""

    def check_quota(self) -> None:
        """The local tagger has no quota."""

    def tag(self, request: TagRequest) -> TagResult:
        media = request.media
        words = LABELS.get(request.language, LABELS["zh"])
        stats = visual_stats([frame.path for frame in request.frames]) if request.frames else None
        found = self._measured(request, words, stats)
        dimensions = {
            dim: {sub: found.get((dim, sub), []) for sub in SUBCATEGORIES[dim]}
            for dim in request.dimensions
        }
        return TagResult(
            tags=flatten_tags(dimensions),
            dimensions=dimensions,
            summary=self._summary(media, words, stats, request.language),
            technical=technical_of(media),
            language=request.language,
            provider=self.provider,
            model=self.model,
            prompt_version=self.prompt_version,
            usage=Usage(),
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
