"""LocalTagger: offline tags measured from the file itself (no key, no network).

It is what a newcomer gets on the embedded defaults. The tags are facts (orientation,
resolution class, duration class, sound), so every confidence is 1.0.
"""

from __future__ import annotations

from shared.tagging.base import TagRequest
from shared.tagging.result import (
    SUBCATEGORIES,
    Tag,
    TagResult,
    Technical,
    Usage,
    flatten_tags,
)
from shared.video.probe import MediaInfo

LABELS = {
    "zh": {
        "portrait": "竖屏", "landscape": "横屏", "square": "方形画面",
        "4k": "4K超高清", "1080p": "1080p全高清", "720p": "720p高清", "sd": "标清",
        "short": "短视频(≤15秒)", "minute": "短视频(≤1分钟)", "medium": "中视频(≤10分钟)",
        "long": "长视频", "sound": "有声", "silent": "无声", "audio_only": "纯音频",
    },
    "en": {
        "portrait": "portrait", "landscape": "landscape", "square": "square frame",
        "4k": "4K UHD", "1080p": "1080p full HD", "720p": "720p HD", "sd": "SD",
        "short": "short video (≤15 s)", "minute": "short video (≤1 min)",
        "medium": "medium video (≤10 min)", "long": "long video", "sound": "with sound",
        "silent": "silent", "audio_only": "audio only",
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
    model = "local-technical-v0"
    prompt_version = ""

    def tag(self, request: TagRequest) -> TagResult:
        media = request.media
        words = LABELS.get(request.language, LABELS["zh"])
        found: dict[tuple[str, str], list[str]] = {
            ("vision", "cinematography"): [
                words[name] for name in (media.orientation, resolution_class(media)) if name
            ] if media.has_video else [],
            ("content", "narrative"): [words[duration_class(media.duration_s)]],
            ("audio", "sound_effects"): [
                words["audio_only"] if not media.has_video
                else words["sound"] if media.has_audio else words["silent"]
            ],
        }
        dimensions = {
            dim: {
                sub: [Tag(tag=name, confidence=1.0) for name in found.get((dim, sub), [])]
                for sub in SUBCATEGORIES[dim]
            }
            for dim in request.dimensions
        }
        return TagResult(
            tags=flatten_tags(dimensions),
            dimensions=dimensions,
            summary="",
            technical=technical_of(media),
            language=request.language,
            provider=self.provider,
            model=self.model,
            prompt_version=self.prompt_version,
            usage=Usage(),
        )
