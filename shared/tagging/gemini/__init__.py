"""The Gemini tagger (docs/tagging.md), a package by concern: `tagger` is the flow, the
other modules its steps (see `tagger`'s docstring). The names callers use are here, so
`from shared.tagging.gemini import GeminiTagger` reads as before the split (issue 41)."""

from shared.tagging.gemini.batch import BatchEntry, rest_request
from shared.tagging.gemini.failures import classify
from shared.tagging.gemini.keys import SHORT_WAIT_S
from shared.tagging.gemini.plan import MAX_OUTPUT_TOKENS, timeout_ms
from shared.tagging.gemini.pricing import (
    AUDIO_TOKENS_PER_S,
    FRAME_TOKENS,
    PROMPT_TOKENS,
    estimate_tokens,
    priced,
)
from shared.tagging.gemini.tagger import GeminiTagger

__all__ = [
    "AUDIO_TOKENS_PER_S", "FRAME_TOKENS", "MAX_OUTPUT_TOKENS", "PROMPT_TOKENS",
    "SHORT_WAIT_S", "BatchEntry", "GeminiTagger", "classify", "estimate_tokens", "priced",
    "rest_request", "timeout_ms",
]
