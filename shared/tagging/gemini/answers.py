"""What one generateContent answer gave (an interactive call's, or one item of a batch
job's), and the task's `TagResult` finished from the parsed answer: the vocabulary's own
spelling, the key moments kept, safety, usage, the transcript."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from google.genai import types

from shared.errors import ErrorCode, PermanentError
from shared.tagging import taxonomy
from shared.tagging.base import TagRequest, request_fingerprint
from shared.tagging.prompting import MAX_KEY_MOMENTS
from shared.tagging.result import (
    GeminiSafetyRating,
    Safety,
    TagResult,
    Usage,
    flatten_tags,
    technical_of,
)


@dataclass(frozen=True)
class Answer:
    """What one generate call gave: the text, its usage, why it stopped, Gemini's own
    safety ratings."""

    text: str
    usage: Usage
    finish_reason: str | None = None
    ratings: list[GeminiSafetyRating] = dataclasses.field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "MAX_TOKENS"


def answer_of(response: types.GenerateContentResponse) -> Answer:
    """What one generateContent answer gave (an interactive call's, or one item of a batch
    job's): text, usage, why it stopped, safety ratings; PermanentError when blocked."""
    metadata = response.usage_metadata
    spent = Usage(requests=1) if metadata is None else Usage(
        requests=1, prompt_tokens=metadata.prompt_token_count or 0,
        cached_tokens=metadata.cached_content_token_count or 0,
        output_tokens=metadata.candidates_token_count or 0,
        thinking_tokens=metadata.thoughts_token_count or 0)
    ratings = _ratings(response)
    _check_blocked(response, ratings)
    candidate = (response.candidates or [None])[0]
    finish = candidate.finish_reason if candidate is not None else None
    return Answer(text=response.text or "", usage=spent, ratings=ratings,
                  finish_reason=getattr(finish, "name", None) or (finish and str(finish)))


def result_of(parsed: dict, ratings: list[GeminiSafetyRating], request: TagRequest,
              vocab: taxonomy.Taxonomy, model: str, total: Usage,
              prompt_version: str) -> TagResult:
    """The task's result from a parsed (or merged) answer: tags in the vocabulary's own
    spelling, at most MAX_KEY_MOMENTS moments, Gemini's ratings beside the model's
    safety, the usage of every call made."""
    dimensions = {dim: {sub: vocab.normalise(dim, sub, request.language, tags)
                        for sub, tags in fields.items()}
                  for dim, fields in parsed["dimensions"].items()}
    safety = parsed["safety"] or Safety()
    safety.gemini_ratings = ratings
    return TagResult(
        dimensions=dimensions, tags=flatten_tags(dimensions),
        key_moments=parsed["key_moments"][:MAX_KEY_MOMENTS], summary=parsed["summary"],
        safety=safety, technical=technical_of(request.media), language=request.language,
        provider="gemini", model=model,
        prompt_version=prompt_version + request_fingerprint(request),
        usage=total, warnings=list(parsed.get("warnings") or []),
        **speech_of(parsed, request),
    )


def speech_of(parsed: dict, request: TagRequest) -> dict[str, Any]:
    """The result's transcript fields from a parsed (or merged) answer; a translation
    that only repeats its segment's text is dropped."""
    segments = [s if s.translation != s.text else s.model_copy(update={"translation": None})
                for s in parsed.get("transcript") or []]
    translated = any(s.translation for s in segments)
    return {"transcript": segments,
            "spoken_language": parsed.get("spoken_language") if segments else None,
            "translated_to": request.translate_to if translated else None}


def _ratings(response: types.GenerateContentResponse) -> list[GeminiSafetyRating]:
    """Gemini's own safety ratings of the answer (or of the prompt, when it blocked it)."""
    feedback = response.prompt_feedback
    found = list(feedback.safety_ratings or []) if feedback is not None else []
    for candidate in response.candidates or []:
        found += candidate.safety_ratings or []
    return [GeminiSafetyRating(
        category=getattr(r.category, "name", str(r.category)),
        probability=getattr(r.probability, "name", None) if r.probability else None,
        blocked=bool(r.blocked)) for r in found if r.category is not None]


def _check_blocked(response: types.GenerateContentResponse,
                   ratings: list[GeminiSafetyRating]) -> None:
    """A blocked answer fails the task (no key penalty, no retry), naming the categories."""
    flagged = [r.category.removeprefix("HARM_CATEGORY_").lower() for r in ratings
               if r.blocked or r.probability in ("MEDIUM", "HIGH")]
    named = f": {', '.join(dict.fromkeys(flagged))}" if flagged else ""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason:
        reason = getattr(feedback.block_reason, "name", str(feedback.block_reason))
        raise PermanentError(f"Gemini blocked the prompt ({reason}){named}",
                             error_code=ErrorCode.BLOCKED_BY_SAFETY)
    for candidate in response.candidates or []:
        if candidate.finish_reason in (types.FinishReason.SAFETY,
                                       types.FinishReason.PROHIBITED_CONTENT,
                                       types.FinishReason.BLOCKLIST):
            reason = getattr(candidate.finish_reason, "name", str(candidate.finish_reason))
            raise PermanentError(f"Gemini stopped for safety ({reason}){named}",
                                 error_code=ErrorCode.BLOCKED_BY_SAFETY)
