"""The tagging result (docs/architecture.md, "Result shape"): stored in `video_tasks.tags`,
answered as `result`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from shared.video.probe import MediaInfo

Dimension = Literal["vision", "audio", "content", "business"]
ALL_DIMENSIONS: tuple[Dimension, ...] = ("vision", "audio", "content", "business")

SUBCATEGORIES: dict[str, tuple[str, ...]] = {
    "vision": ("characters", "scene", "cinematography"),
    "audio": ("speech", "music", "sound_effects"),
    "content": ("theme", "narrative", "emotion", "on_screen_text"),
    "business": ("product", "marketing", "audience"),
}
"""The lists inside each dimension, in the order the result shows them."""


class Tag(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    tag: str = Field(min_length=1)
    confidence: float
    free: bool = False
    """True for a tag outside the controlled vocabulary of its field (kept as said)."""
    read: bool = False
    """True for text read in the video (on-screen text and its keywords), kept as written
    rather than described or translated."""
    lang: str | None = None
    """The language `tag` is written in where that is not the result's `language` (text
    read on screen, e.g. `zh` in an English result); null otherwise."""

    @field_validator("confidence")
    @classmethod
    def _clamp(cls, value: float) -> float:
        return min(1.0, max(0.0, value))


MomentSource = Literal["moment", "text", "speech"]


class KeyMoment(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    description: str = ""
    tags: list[str] = []
    source: MomentSource = "moment"
    """`text`: a line read on screen; `speech`: a stretch of voice (offline tagger);
    `moment`: what the tagger marked as a moment. Subtitles' `?kind=text` shows `text`."""


TRANSLATIONS = ("zh", "en")
"""The languages a transcript can be translated into (`translate_to`)."""


class TranscriptSegment(BaseModel):
    """One stretch of speech: what one speaker said, in the language spoken."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    text: str
    speaker: str = ""
    """A label the model keeps for one voice through the video (`A`, `B` …, or a role)."""
    translation: str | None = None
    """`text` in the request's `translate_to`; null when not asked for, or when the
    speech is already in that language."""


class Technical(BaseModel):
    """Measured locally from the file, whatever the tagger."""

    duration_s: float
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    orientation: Literal["portrait", "landscape", "square"] | None = None
    has_audio: bool
    has_video: bool = True
    container: str
    video_codec: str | None = None
    audio_codec: str | None = None
    rotation: int = 0
    bitrate_kbps: int | None = None
    scene_changes: int | None = None
    loudness_db: float | None = None
    """Mean (RMS) level of the audio track in dBFS (offline tagger)."""
    peak_db: float | None = None
    speech_ratio: float | None = None
    """Share of the audio track with voice activity (offline tagger)."""


class FrameRef(BaseModel):
    """A stored key frame: when it is in the video and where it is kept."""

    t_s: float
    uri: str


class Usage(BaseModel):
    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cost_usd: float = 0.0
    """Estimated from GEMINI_PRICES (docs/decisions.md: source and date)."""
    batch_requests: int = 0
    """Of `requests`, those answered by a Gemini Batch API job (priced at its batch rate)."""


SAFETY_CATEGORIES = ("adult", "violence", "hate", "dangerous_acts", "drugs", "gambling",
                     "shocking")
"""The brand-safety categories the model judges (none/low/medium/high each)."""

SafetyLevel = Literal["none", "low", "medium", "high"]


class SafetyJudgement(BaseModel):
    level: SafetyLevel = "none"
    at_s: float | None = None
    """Where in the video it appears (the model's answer, fitted to the video)."""


class GeminiSafetyRating(BaseModel):
    """Gemini's own `safetyRatings` entry for the answer."""

    category: str
    probability: str | None = None
    blocked: bool = False


class Safety(BaseModel):
    """Brand safety: the model's judgement per category, and Gemini's own ratings."""

    categories: dict[str, SafetyJudgement] = {}
    gemini_ratings: list[GeminiSafetyRating] = []


def added(total: Usage, more: Usage) -> Usage:
    """Two usages summed (one task's calls)."""
    summed = {name: getattr(total, name) + getattr(more, name) for name in Usage.model_fields}
    return Usage(**{**summed, "cost_usd": round(summed["cost_usd"], 6)})


class ReusedFrom(BaseModel):
    """Where a near-duplicate's result came from (`reuse: similar`, issue 40): no model
    call was made for this video."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    task_id: str
    similarity: float = Field(ge=0, le=1)
    """How alike the pictures are (1: the same frames)."""
    offset_s: float
    """This video's time t is the source's t + offset_s (a trimmed start); key moments
    and transcript were shifted by it."""
    scale: float
    """This video's picture width over the source's (0.5: half the size)."""
    duration_delta_s: float
    """This video's duration minus the source's."""


class TagResult(BaseModel):
    tags: list[str]
    dimensions: dict[str, dict[str, list[Tag]]]
    key_moments: list[KeyMoment] = []
    summary: str = ""
    technical: Technical
    frames: list[FrameRef] = []
    language: str
    provider: str
    model: str
    prompt_version: str = ""
    cached: bool = False
    usage: Usage = Usage()
    safety: Safety | None = None
    warnings: list[str] = []
    """What was fixed or dropped on the way (e.g. key moments outside the video)."""
    transcript: list[TranscriptSegment] = []
    """What was said, in time order (`audio` requested and speech heard; Gemini only)."""
    spoken_language: str | None = None
    """The main language of the speech (ISO 639-1, e.g. `zh`, `en`); null without speech."""
    translated_to: str | None = None
    """The request's `translate_to` when the segments carry a `translation`."""
    reused_from: ReusedFrom | None = None
    """Set when the result is a near-duplicate's (`reuse: similar`), null otherwise."""


def flatten_tags(dimensions: dict[str, dict[str, list[Tag]]]) -> list[str]:
    """The flat `tags` list: de-duplicated, highest confidence first, stable on ties."""
    best: dict[str, float] = {}
    for groups in dimensions.values():
        for tags in groups.values():
            for item in tags:
                best[item.tag] = max(best.get(item.tag, 0.0), item.confidence)
    return sorted(best, key=lambda name: -best[name])


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
