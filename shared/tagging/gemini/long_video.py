"""A video longer than GEMINI_WINDOW_S, asked part by part over the same upload (one per
key), each part's answer kept on the row as soon as it is in (`request.on_window`), so a
redelivery asks only for the parts still missing; then the parts merged into one answer
(`shared.tagging.windows.merge`)."""

from __future__ import annotations

from collections.abc import Callable

from shared.tagging import windows
from shared.tagging.base import TagRequest
from shared.tagging.gemini.answers import Answer
from shared.tagging.gemini.media import Media, Uploads
from shared.tagging.gemini.plan import CallPlan
from shared.tagging.result import GeminiSafetyRating, Safety, Usage

Window = tuple[float, float]
Ask = Callable[[TagRequest, CallPlan], tuple[dict, Answer, str, Usage]]
Plan = Callable[[Window, Uploads], CallPlan]


def ask_in_windows(request: TagRequest, parts: list[Window], ask: Ask, plan: Plan,
                   media: Media) -> tuple[dict, list[GeminiSafetyRating], str]:
    """Part by part over the same video: the merged answer, its Gemini ratings and the
    model of the last part. The uploads the parts shared are deleted at the end."""
    done = dict(request.windows_done or {})
    uploads: Uploads = {}
    try:
        for index, window in enumerate(parts):
            if str(index) in done:
                continue
            parsed, answer, model, usage = ask(request, plan(window, uploads))
            done[str(index)] = _kept(parsed, answer, model, usage, window)
            if request.on_window is not None:
                request.on_window(done)
    finally:
        for (_, endpoint), (uploaded, lease, _) in uploads.items():
            media.delete(uploaded, lease, endpoint)
    merged = windows.merge([done[str(i)] for i in range(len(parts))], parts)
    ratings = merged["safety"].gemini_ratings if merged["safety"] else []
    return merged, ratings, done[str(len(parts) - 1)]["model"]


def _kept(parsed: dict, answer: Answer, model: str, usage: Usage, window: Window) -> dict:
    """One part's answer as the row keeps it (JSON)."""
    safety = parsed["safety"] or Safety()
    safety.gemini_ratings = answer.ratings
    return {
        "dimensions": {d: {f: [t.model_dump() for t in tags]
                           for f, tags in fields.items()}
                       for d, fields in parsed["dimensions"].items()},
        "key_moments": [m.model_dump() for m in parsed["key_moments"]],
        "summary": parsed["summary"], "safety": safety.model_dump(),
        "transcript": [s.model_dump() for s in parsed["transcript"]],
        "spoken_language": parsed["spoken_language"],
        "warnings": parsed["warnings"],
        "usage": usage.model_dump(), "model": model, "window": list(window)}
