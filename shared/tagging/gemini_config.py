"""What the Gemini tagger is configured with: the few settings it reads, and nothing else.

The composition root (`shared.services.gemini_config`) builds it from the settings; tests and
benchmarks build it the same way. Kept apart from the `gemini` package so that building one
does not import google-genai.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class GeminiConfig:
    """The tagger's settings (the variables in brackets; their defaults are in shared.config)."""

    model: str
    """The primary model (GEMINI_MODEL)."""
    fallback_models: tuple[str, ...]
    """Tried in order while the primary model is overloaded (GEMINI_FALLBACK_MODELS)."""
    endpoints: tuple[str, ...]
    """Where requests go, in order of preference; "" is Google's own (GEMINI_BASE_URL)."""
    timeout_s: float
    """Base time limit of one call, and of a client's calls (GEMINI_TIMEOUT_S)."""
    timeout_per_minute_s: float
    """Added to a call's limit per minute of video (GEMINI_TIMEOUT_PER_MINUTE_S)."""
    timeout_per_mb_s: float
    """Added to a call's limit per MB sent (GEMINI_TIMEOUT_PER_MB_S)."""
    thinking_budget: int
    """Thinking tokens per answer; -1 lets the model decide (GEMINI_THINKING_BUDGET)."""
    media_resolution: Literal["auto", "low", "medium", "high"]
    """Resolution the video is seen at; `auto` picks by length (GEMINI_MEDIA_RESOLUTION)."""
    low_res_above_s: float
    """With `auto`: longer videos are seen at low resolution (GEMINI_LOW_RES_ABOVE_S)."""
    prices: Mapping[str, Mapping[str, float]]
    """USD per million tokens by model; none known: priced at 0 (GEMINI_PRICES)."""
    taxonomy_file: str
    """The taxonomy JSON; "" is the one shipped in shared/tagging (TAXONOMY_FILE)."""
    temperature: float
    """Sampling temperature (GEMINI_TEMPERATURE)."""
    max_output_tokens: int
    """Output tokens of an answer, doubled once if cut off (GEMINI_MAX_OUTPUT_TOKENS)."""
    window_s: float
    """A longer video is tagged part by part, each at most this long (GEMINI_WINDOW_S)."""
    deadline_s: float
    """How long one answer may take, failing over between keys (GEMINI_DEADLINE_S)."""
    file_timeout_s: float
    """How long an uploaded video may take to become ACTIVE (GEMINI_FILE_TIMEOUT_S)."""
    tag_input: Literal["video", "frames"]
    """What the model sees: the video, or key frames and the audio track (TAG_INPUT)."""
    inline_max_mb: float
    """A request up to this size carries the video inline, else it is uploaded (INLINE_MAX_MB)."""
