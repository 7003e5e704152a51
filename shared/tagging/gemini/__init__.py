"""The Gemini tagger (docs/tagging.md), a package by concern: `tagger` is the flow, the
other modules its steps (see `tagger`'s docstring). The names callers use are here, so
`from shared.tagging.gemini import GeminiTagger` reads as before the split (issue 41)."""

from shared.tagging.gemini.answers import Answer, answer_of, speech_of
from shared.tagging.gemini.batch import BatchEntry, rest_request
from shared.tagging.gemini.failures import KeyCoolingDown, classify, quota_scope
from shared.tagging.gemini.keys import SHORT_WAIT_S
from shared.tagging.gemini.media import MIME_TYPES
from shared.tagging.gemini.plan import MAX_OUTPUT_TOKENS, MEDIA_RESOLUTIONS, CallPlan, timeout_ms
from shared.tagging.gemini.pricing import (
    AUDIO_TOKENS_PER_S,
    BATCH_PRICE_SHARE,
    FRAME_TOKENS,
    PROMPT_TOKENS,
    estimate_tokens,
    priced,
)
from shared.tagging.gemini.tagger import GeminiTagger
from shared.tagging.gemini.wire import OnTheWire

__all__ = [
    "AUDIO_TOKENS_PER_S", "BATCH_PRICE_SHARE", "FRAME_TOKENS", "MAX_OUTPUT_TOKENS",
    "MEDIA_RESOLUTIONS", "MIME_TYPES", "PROMPT_TOKENS", "SHORT_WAIT_S", "Answer",
    "BatchEntry", "CallPlan", "GeminiTagger", "KeyCoolingDown", "OnTheWire", "answer_of",
    "classify", "estimate_tokens", "priced", "quota_scope", "rest_request", "speech_of",
    "timeout_ms",
]
