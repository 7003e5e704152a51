"""What every try of one task (or of one window of a long video) sends: instructions,
response schema, media, generation settings, time limit, estimated tokens, output budget —
planned once, before a key is chosen, so every key and endpoint tried sends the same."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from google.genai import types

from shared.tagging import taxonomy, transcript, windows
from shared.tagging.base import TagRequest
from shared.tagging.gemini.media import Uploads, frames_parts
from shared.tagging.gemini.pricing import estimate_tokens
from shared.tagging.gemini_config import GeminiConfig
from shared.tagging.prompting import response_schema, system_instruction, template, user_prompt

MAX_OUTPUT_TOKENS = 65_536
"""Gemini 2.5's ceiling for maxOutputTokens: a cut-off answer is asked again with twice
GEMINI_MAX_OUTPUT_TOKENS, up to this."""

MEDIA_RESOLUTIONS = {
    "low": types.MediaResolution.MEDIA_RESOLUTION_LOW,
    "medium": types.MediaResolution.MEDIA_RESOLUTION_MEDIUM,
    "high": types.MediaResolution.MEDIA_RESOLUTION_HIGH,
}


@dataclass
class CallPlan:
    """What every try of one task sends."""

    timeout_ms: int
    media_parts: list | None
    prompt: tuple[str, str]
    config: dict
    tokens: int
    max_output_tokens: int
    language: str = "zh"
    clip: tuple[float, float] | None = None
    """The part of the video this call is about (`videoMetadata` offsets), or all of it."""
    uploads: Uploads | None = None
    """(key id, endpoint) → (uploaded file, lease): a long video's parts share an upload
    per key (a file belongs to the key's project); deleted when the last part is in."""
    shortened: bool = False
    """Asked again after an answer was cut off: more output tokens, fewer moments."""
    transcribe: bool = False
    """The answer carries a transcript (cut at a whole segment if cut off again)."""

    def shortened_plan(self) -> CallPlan:
        return dataclasses.replace(
            self, shortened=True,
            max_output_tokens=min(MAX_OUTPUT_TOKENS, 2 * self.max_output_tokens),
            prompt=(self.prompt[0],
                    self.prompt[1] + "\n\n" + template("shorter", self.language)))


def plan_call(config: GeminiConfig, request: TagRequest, vocab: taxonomy.Taxonomy,
              clip: tuple[float, float] | None = None, uploads: Uploads | None = None
              ) -> CallPlan:
    """What every try of this task (or of one part of it, `clip`) sends: instructions,
    schema, media, limits."""
    frames_mode = config.tag_input == "frames" and request.media.has_video
    transcribe = transcript.wanted(request.dimensions, request.media.has_audio)
    speech = {"transcribe": transcribe,
              "translate_to": request.translate_to if transcribe else None}
    prompt = user_prompt(request.dimensions, request.language, request.media.duration_s,
                         request.media.orientation, frames_mode, vocab, **speech)
    if clip is not None:
        prompt = (prompt[0], prompt[1] + "\n" + windows.facts(clip, request.language))
    generation = dict(
        system_instruction=system_instruction(request.language),
        response_mime_type="application/json",
        response_schema=response_schema(request.dimensions, request.language, vocab,
                                        **speech),
        temperature=config.temperature,
    )
    if thinking_budget(config) is not None:
        generation["thinking_config"] = types.ThinkingConfig(
            thinking_budget=thinking_budget(config))
    resolution = media_resolution(config, request)
    generation["media_resolution"] = MEDIA_RESOLUTIONS[resolution]
    return CallPlan(timeout_ms=timeout_ms(config, request),
                    media_parts=frames_parts(request) if frames_mode else None,
                    prompt=prompt, config=generation,
                    tokens=estimate_tokens(request, resolution, frames_mode,
                                           seconds=clip[1] - clip[0] if clip else None),
                    max_output_tokens=output_budget(config, request, clip, transcribe),
                    language=request.language, clip=clip, uploads=uploads,
                    transcribe=transcribe)


def contents(call: CallPlan, media_parts: list) -> list[types.Content]:
    """The constant instructions first (a prefix Gemini's implicit cache can reuse across
    tasks), then the video, then this video's facts."""
    return [types.Content(role="user", parts=[
        types.Part.from_text(text=call.prompt[0]), *media_parts,
        types.Part.from_text(text=call.prompt[1])])]


def output_budget(config: GeminiConfig, request: TagRequest,
                  clip: tuple[float, float] | None, transcribe: bool) -> int:
    """GEMINI_MAX_OUTPUT_TOKENS, plus the transcript's share for the seconds heard."""
    base = config.max_output_tokens
    if not transcribe:
        return base
    seconds = clip[1] - clip[0] if clip else request.media.duration_s
    return transcript.output_budget(base, seconds, request.translate_to, MAX_OUTPUT_TOKENS)


def media_resolution(config: GeminiConfig, request: TagRequest) -> str:
    """GEMINI_MEDIA_RESOLUTION, or with `auto`: low above GEMINI_LOW_RES_ABOVE_S (a long
    video costs a quarter of the tokens; tags need no fine detail), else medium."""
    chosen = config.media_resolution
    if chosen != "auto":
        return chosen
    return "low" if request.media.duration_s > config.low_res_above_s else "medium"


def timeout_ms(config: GeminiConfig, request: TagRequest) -> int:
    """Per call: GEMINI_TIMEOUT_S, plus GEMINI_TIMEOUT_PER_MINUTE_S per minute of
    video and GEMINI_TIMEOUT_PER_MB_S per MB sent — a 10-minute video is not cut by a
    limit sized for 10 seconds."""
    size_mb = request.source.size_bytes / 1024 / 1024
    seconds = (config.timeout_s
               + config.timeout_per_minute_s * request.media.duration_s / 60
               + config.timeout_per_mb_s * size_mb)
    return int(seconds * 1000)


def thinking_budget(config: GeminiConfig) -> int | None:
    """None (send nothing) for -1 (the model decides) and for models without thinking."""
    budget = config.thinking_budget
    if budget < 0 or config.model.startswith(("gemini-1.", "gemini-2.0")):
        return None
    return budget
