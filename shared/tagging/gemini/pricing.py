"""What a request costs: its input tokens estimated before it is sent (the key's token
window is charged with the estimate), and the price of what an answer used."""

from __future__ import annotations

from collections.abc import Mapping

from shared.tagging.base import TagRequest
from shared.tagging.result import Usage

FRAME_TOKENS = {"low": 66, "medium": 258, "high": 258}
"""Input tokens per video frame (Gemini samples 1 frame/s) or image, by media resolution."""

AUDIO_TOKENS_PER_S = 32
PROMPT_TOKENS = 1500
"""System instruction, instructions and response schema, about (measured from
usageMetadata of a text-only request with the largest schema)."""

BATCH_PRICE_SHARE = 0.5
"""Batch API requests cost half the interactive price (ai.google.dev, Batch API guide)."""


def estimate_tokens(request: TagRequest, resolution: str, frames_mode: bool,
                    seconds: float | None = None) -> int:
    """Input tokens of one request, from Google's published per-second rates (token
    counting guide, ai.google.dev, read 2026-11): frames at 1 per second (or the key
    frames), audio at 32 per second, and the prompt. `seconds`: the part of the video sent
    (a window of a long one), else all of it."""
    media = request.media
    seconds = media.duration_s if seconds is None else seconds
    if frames_mode:
        picture = len(request.frames) * FRAME_TOKENS[resolution]
    else:
        picture = int(seconds) * FRAME_TOKENS[resolution] if media.has_video else 0
    sound = int(seconds * AUDIO_TOKENS_PER_S) if media.has_audio else 0
    return PROMPT_TOKENS + picture + sound


def priced(usage: Usage, model: str, prices: Mapping[str, Mapping[str, float]], *,
           batch: bool = False) -> Usage:
    """`usage` with its estimated price (`prices`: GEMINI_PRICES, USD per million tokens;
    cached input at its own rate; thinking billed as output); `batch`: a Batch API answer, at
    the model's `batch` share of those prices (BATCH_PRICE_SHARE when it names none)."""
    price = prices.get(model) or {}
    fresh = max(0, usage.prompt_tokens - usage.cached_tokens)
    usd = (fresh * price.get("input", 0) + usage.cached_tokens * price.get("cached", 0)
           + (usage.output_tokens + usage.thinking_tokens) * price.get("output", 0)) / 1e6
    if batch:
        usd *= price.get("batch", BATCH_PRICE_SHARE)
        return usage.model_copy(update={"cost_usd": round(usd, 6),
                                        "batch_requests": usage.requests})
    return usage.model_copy(update={"cost_usd": round(usd, 6)})
