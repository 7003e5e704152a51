"""GeminiTagger: one `generate_content` call per task for all requested dimensions,
with the API key chosen per call from the AccountPool (docs/tagging.md).

Every outcome goes back to the pool; on a 429, an invalid key, a 403, a 5xx or a timeout
the tagger fails over to the next key until `GEMINI_DEADLINE_S`. When no key is free the
task goes back to the queue with Retry-After = the pool's earliest free moment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google import genai
from google.genai import _common, errors, types
from google.genai import batches as genai_batches

from shared import redis_keys
from shared.accounts.pool import AccountPool, Lease, Outcome
from shared.errors import (
    ErrorCode,
    PermanentError,
    TransientError,
    WaitForKey,
    WaitForModel,
    WaitForRoute,
)
from shared.redact import redact
from shared.tagging import taxonomy, transcript, vocabulary, windows
from shared.tagging.base import TagRequest, request_fingerprint
from shared.tagging.gemini_config import GeminiConfig
from shared.tagging.health import GeminiHealth, shown
from shared.tagging.prompting import (
    MAX_KEY_MOMENTS,
    ModelOutputError,
    mmss,
    parse_output,
    prompt_version,
    response_schema,
    system_instruction,
    template,
    user_prompt,
)
from shared.tagging.result import (
    GeminiSafetyRating,
    Safety,
    TagResult,
    Usage,
    added,
    flatten_tags,
    technical_of,
)
from shared.video.audio import extract_audio

log = logging.getLogger("vision_to_tag.gemini")

MIME_TYPES = {
    "mp4": "video/mp4", "mov": "video/mov", "avi": "video/avi", "flv": "video/x-flv",
    "webm": "video/webm", "3gp": "video/3gpp", "wav": "audio/wav",
}
MAX_KEY_ATTEMPTS = 8
"""Keys tried for one task before it goes back to the queue."""

SHORT_WAIT_S = 3.0
"""A key that frees within this long is waited for; a longer wait re-queues the task."""

FILE_POLL_S = 1.0
MAX_FILE_CLIENTS = 256
"""Per-key clients kept for the Files API (one per key in a normal pool)."""
JSON_RETRIES = 1
MAX_OUTPUT_TOKENS = 65_536
"""Gemini 2.5's ceiling for maxOutputTokens: a cut-off answer is asked again with twice
GEMINI_MAX_OUTPUT_TOKENS, up to this."""
"""Invalid JSON from the model is asked again once, then it is a transient failure."""


class GeminiTagger:
    provider = "gemini"
    needs_quota = True

    def __init__(self, pool: AccountPool, config: GeminiConfig,
                 client: genai.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 health: GeminiHealth | None = None) -> None:
        self.pool = pool
        self.config = config
        self.model = config.model
        self.taxonomy = taxonomy.cached(config.taxonomy_file)
        self.prompt_version = f"{prompt_version()}-{taxonomy.fingerprint(config.taxonomy_file)}"
        self.sleep = sleep
        self.health = health or GeminiHealth(pool.redis)
        self._clients: dict[str, genai.Client] = {}
        if client is not None:
            self._clients[self.config.endpoints[0]] = client
        self._file_clients: dict[tuple[str, str], genai.Client] = {}
        self._clients_lock = threading.Lock()
        self._wire = OnTheWire(pool)

    def _new_client(self, api_key: str, endpoint: str) -> genai.Client:
        return genai.Client(api_key=api_key, http_options=types.HttpOptions(
            base_url=endpoint or None, timeout=int(self.config.timeout_s * 1000),
            client_args={"event_hooks": {"request": [self._wire.on_request]}},
        ))

    # A genai.Client closes its HTTP connections when it is garbage-collected, even while
    # another thread is in a call through it ("client has been closed", EBADF). So clients
    # are created under a lock (two threads never both create one and drop the other),
    # and a caller keeps the client in a local variable for as long as it uses it.

    def _client(self, endpoint: str) -> genai.Client:
        """One client per endpoint; the key is chosen per call."""
        with self._clients_lock:
            if endpoint not in self._clients:
                self._clients[endpoint] = self._new_client("chosen-per-call-from-the-pool",
                                                           endpoint)
            return self._clients[endpoint]

    def _file_client(self, lease: Lease, endpoint: str) -> genai.Client:
        """A client bound to one key, for the Files API only: the SDK's resumable upload
        replaces per-call headers, so a per-call key cannot reach the upload request."""
        slot = (endpoint, lease.key_id)
        with self._clients_lock:
            if slot not in self._file_clients:
                if len(self._file_clients) >= MAX_FILE_CLIENTS:
                    self._file_clients.pop(next(iter(self._file_clients)))
                self._file_clients[slot] = self._new_client(lease.api_key, endpoint)
            return self._file_clients[slot]

    # --- the public calls -------------------------------------------------------------

    def check_quota(self) -> None:
        """WaitForKey unless a key frees within SHORT_WAIT_S (the pool's own answer; the
        key itself is taken when the request is ready to go)."""
        wait = self.pool.next_free_in()
        if wait is None:
            raise WaitForKey("no Gemini key free: no usable key in the pool", retry_after_s=60)
        if wait > SHORT_WAIT_S:
            raise WaitForKey("no Gemini key free: all keys busy", retry_after_s=wait)

    def tag(self, request: TagRequest) -> TagResult:
        vocab = vocabulary.overlay(self.taxonomy, request.vocabulary)
        parts = windows.plan(request.media.duration_s, self.config.window_s)
        if len(parts) > 1 and self.config.tag_input == "video":
            return self._tag_in_windows(request, vocab, parts)
        parsed, answer, model, total = self._ask(request, self._plan(request, vocab))
        return self._result(parsed, answer.ratings, request, vocab, model, total)

    def _tag_in_windows(self, request: TagRequest, vocab: taxonomy.Taxonomy,
                        parts: list[tuple[float, float]]) -> TagResult:
        """Part by part over the same video; each part's answer is kept on the row at once
        (`request.on_window`), so a redelivery asks only for the parts still missing."""
        done = dict(request.windows_done or {})
        uploads: dict = {}
        try:
            for index, window in enumerate(parts):
                if str(index) in done:
                    continue
                parsed, answer, model, usage = self._ask(
                    request, self._plan(request, vocab, window, uploads))
                safety = parsed["safety"] or Safety()
                safety.gemini_ratings = answer.ratings
                done[str(index)] = {
                    "dimensions": {d: {f: [t.model_dump() for t in tags]
                                       for f, tags in fields.items()}
                                   for d, fields in parsed["dimensions"].items()},
                    "key_moments": [m.model_dump() for m in parsed["key_moments"]],
                    "summary": parsed["summary"], "safety": safety.model_dump(),
                    "transcript": [s.model_dump() for s in parsed["transcript"]],
                    "spoken_language": parsed["spoken_language"],
                    "warnings": parsed["warnings"],
                    "usage": usage.model_dump(), "model": model, "window": list(window)}
                if request.on_window is not None:
                    request.on_window(done)
        finally:
            for (_, endpoint), (uploaded, lease, _) in uploads.items():
                self._delete(uploaded, lease, endpoint)
        merged = windows.merge([done[str(i)] for i in range(len(parts))], parts)
        ratings = merged["safety"].gemini_ratings if merged["safety"] else []
        return self._result(merged, ratings, request, vocab,
                            done[str(len(parts) - 1)]["model"], merged["usage"])

    def _ask(self, request: TagRequest, call: _CallPlan) -> tuple[dict, _Answer, str, Usage]:
        """One answer from Gemini, failing over between keys, endpoints and models:
        (parsed answer, the call that gave it, its model, the usage of every call made)."""
        deadline = time.monotonic() + self.config.deadline_s
        total, bad_json, last_error = Usage(), 0, "no attempt"
        for _ in range(MAX_KEY_ATTEMPTS):
            model, endpoint = self._model(), self._endpoint()
            lease = self._lease(deadline, call.tokens, model)
            answer = self._try_key(lease, endpoint, model, request, call)
            if isinstance(answer, _FailedOver):
                last_error = answer.reason
                if answer.key_failed and time.monotonic() >= deadline:
                    break
                continue
            self.pool.report(lease.key_id, Outcome.success(), lease.member, lease=lease)
            spent = priced(answer.usage, model, self.config.prices)
            self._account_for(lease, spent)
            total = added(total, spent)
            self.health.model_ok(model)
            self.health.endpoint_ok(endpoint)
            try:
                parsed = parse_output(answer.text, request.dimensions, cut_transcript=(
                    call.shortened and call.transcribe and answer.truncated))
            except ModelOutputError as error:
                last_error = str(error)
                if error.truncated or answer.truncated:
                    if call.shortened:
                        raise TransientError(
                            f"gemini answer cut off even with {call.max_output_tokens} output "
                            "tokens", error_code=ErrorCode.INVALID_MODEL_OUTPUT) from None
                    call = call.shortened_plan()
                    log.warning("gemini answer cut off (%s): asked again with %d output "
                                "tokens and fewer moments", answer.finish_reason or "JSON",
                                call.max_output_tokens)
                    continue
                bad_json += 1
                if bad_json > JSON_RETRIES:
                    raise TransientError(f"gemini answered invalid JSON twice: {error}",
                                         error_code=ErrorCode.INVALID_MODEL_OUTPUT) from None
                continue
            return parsed, answer, model, total
        raise TransientError(f"gemini unavailable after failing over: {last_error}",
                             error_code=ErrorCode.GEMINI_UNAVAILABLE)

    def _try_key(self, lease: Lease, endpoint: str, model: str, request: TagRequest,
                 call: _CallPlan) -> _Answer | _FailedOver:
        """One call with one key: its answer, or why it failed over, the failure reported
        to the pool (the key's) or to the shared back-offs (the model's, the endpoint's)."""
        try:
            return self._with_key(lease, endpoint, model, request, call)
        except PermanentError:
            self.pool.report(lease.key_id, Outcome.success(), lease=lease)  # the key is fine
            raise
        except _ModelOverloaded as failure:
            self.pool.report(lease.key_id, Outcome("neutral", failure.reason), lease=lease)
            backoff = self.health.model_overloaded(model)
            reason = f"{model} overloaded ({failure.reason})"
            log.warning("%s; shared back-off %.0f s", reason, backoff)
            return _FailedOver(reason)
        except _RouteFailed as failure:
            self.pool.report(lease.key_id, Outcome("neutral", failure.reason), lease=lease)
            backoff = self.health.endpoint_failed(endpoint, failure.kind)
            reason = f"endpoint {shown(endpoint)}: {failure.reason}"
            log.warning("%s; endpoint backs off %.0f s", reason, backoff)
            return _FailedOver(reason)
        except KeyCoolingDown as failure:  # never sent: refunded, no lesson
            self.pool.release(lease)
            return _FailedOver(str(failure))
        except _KeyFailed as failure:
            self.pool.report(lease.key_id, failure.outcome, lease.member, lease=lease)
            log.info("gemini key failed over: %s", failure.outcome.reason,
                     extra={"key_id": lease.key_id})
            return _FailedOver(failure.outcome.reason, key_failed=True)

    def _plan(self, request: TagRequest, vocab: taxonomy.Taxonomy,
              clip: tuple[float, float] | None = None, uploads: dict | None = None
              ) -> _CallPlan:
        """What every try of this task (or of one part of it, `clip`) sends: instructions,
        schema, media, limits."""
        frames_mode = self.config.tag_input == "frames" and request.media.has_video
        transcribe = transcript.wanted(request.dimensions, request.media.has_audio)
        speech = {"transcribe": transcribe,
                  "translate_to": request.translate_to if transcribe else None}
        prompt = user_prompt(request.dimensions, request.language, request.media.duration_s,
                             request.media.orientation, frames_mode, vocab, **speech)
        if clip is not None:
            prompt = (prompt[0], prompt[1] + "\n" + windows.facts(clip, request.language))
        config = dict(
            system_instruction=system_instruction(request.language),
            response_mime_type="application/json",
            response_schema=response_schema(request.dimensions, request.language, vocab,
                                            **speech),
            temperature=self.config.temperature,
        )
        if self._thinking_budget() is not None:
            config["thinking_config"] = types.ThinkingConfig(
                thinking_budget=self._thinking_budget())
        resolution = self.media_resolution(request)
        config["media_resolution"] = MEDIA_RESOLUTIONS[resolution]
        return _CallPlan(timeout_ms=self.timeout_ms(request),
                         media_parts=self._frames_parts(request) if frames_mode else None,
                         prompt=prompt, config=config,
                         tokens=estimate_tokens(request, resolution, frames_mode,
                                                seconds=clip[1] - clip[0] if clip else None),
                         max_output_tokens=self._output_budget(request, clip, transcribe),
                         language=request.language, clip=clip, uploads=uploads,
                         transcribe=transcribe)

    def _output_budget(self, request: TagRequest, clip: tuple[float, float] | None,
                       transcribe: bool) -> int:
        """GEMINI_MAX_OUTPUT_TOKENS, plus the transcript's share for the seconds heard."""
        base = self.config.max_output_tokens
        if not transcribe:
            return base
        seconds = clip[1] - clip[0] if clip else request.media.duration_s
        return transcript.output_budget(base, seconds, request.translate_to,
                                        MAX_OUTPUT_TOKENS)

    def _result(self, parsed: dict, ratings: list[GeminiSafetyRating], request: TagRequest,
                vocab: taxonomy.Taxonomy, model: str, total: Usage) -> TagResult:
        dimensions = {dim: {sub: vocab.normalise(dim, sub, request.language, tags)
                            for sub, tags in fields.items()}
                      for dim, fields in parsed["dimensions"].items()}
        safety = parsed["safety"] or Safety()
        safety.gemini_ratings = ratings
        return TagResult(
            dimensions=dimensions, tags=flatten_tags(dimensions),
            key_moments=parsed["key_moments"][:MAX_KEY_MOMENTS], summary=parsed["summary"],
            safety=safety, technical=technical_of(request.media), language=request.language,
            provider=self.provider, model=model,
            prompt_version=self.prompt_version + request_fingerprint(request),
            usage=total, warnings=list(parsed.get("warnings") or []),
            **speech_of(parsed, request),
        )

    def media_resolution(self, request: TagRequest) -> str:
        """GEMINI_MEDIA_RESOLUTION, or with `auto`: low above GEMINI_LOW_RES_ABOVE_S (a long
        video costs a quarter of the tokens; tags need no fine detail), else medium."""
        chosen = self.config.media_resolution
        if chosen != "auto":
            return chosen
        return "low" if request.media.duration_s > self.config.low_res_above_s \
            else "medium"

    def _account_for(self, lease: Lease, spent: Usage) -> None:
        """One answered call: the real input tokens replace the estimate in the key's
        token window, and its tokens and cost go on the key's day (per-key spend)."""
        if spent.prompt_tokens:
            self.pool.record_tokens(lease, spent.prompt_tokens)
        self.pool.record_usage(lease, spent.prompt_tokens,
                               spent.output_tokens + spent.thinking_tokens, spent.cost_usd)

    def timeout_ms(self, request: TagRequest) -> int:
        """Per call: GEMINI_TIMEOUT_S, plus GEMINI_TIMEOUT_PER_MINUTE_S per minute of
        video and GEMINI_TIMEOUT_PER_MB_S per MB sent — a 10-minute video is not cut by a
        limit sized for 10 seconds."""
        config = self.config
        size_mb = request.source.size_bytes / 1024 / 1024
        seconds = (config.timeout_s
                   + config.timeout_per_minute_s * request.media.duration_s / 60
                   + config.timeout_per_mb_s * size_mb)
        return int(seconds * 1000)

    def _thinking_budget(self) -> int | None:
        """None (send nothing) for -1 (the model decides) and for models without thinking."""
        budget = self.config.thinking_budget
        if budget < 0 or self.model.startswith(("gemini-1.", "gemini-2.0")):
            return None
        return budget

    # --- models and endpoints ------------------------------------------------------------

    def _model(self) -> str:
        """The primary model unless it is backing off, else the first fallback that is not."""
        waits = []
        for model in [self.model, *self.config.fallback_models]:
            gate = self.health.model_gate(model)
            if gate.open:
                return model
            waits.append(gate.wait_s)
        raise WaitForModel(f"{self.model} is overloaded (shared back-off)",
                           retry_after_s=max(1.0, min(waits)))

    def _endpoint(self) -> str:
        waits = []
        for endpoint in self.config.endpoints:
            gate = self.health.endpoint_gate(endpoint)
            if gate.open:
                return endpoint
            waits.append(gate.wait_s)
        raise WaitForRoute("every Gemini endpoint is refused or unreachable: "
                           "see /healthz (gemini)", retry_after_s=max(1.0, min(waits)))

    # --- keys --------------------------------------------------------------------------

    def _lease(self, deadline: float, tokens: int = 0, model: str | None = None) -> Lease:
        """A key for `model`: counted in that model's quota of the key's project."""
        while True:
            lease = self.pool.acquire(tokens, model)
            if isinstance(lease, Lease):
                return lease
            wait = lease.retry_after_s
            if wait <= SHORT_WAIT_S and time.monotonic() + wait < deadline:
                self.sleep(max(wait, 0.05))
                continue
            raise WaitForKey(f"no Gemini key free: {lease.reason}",
                             retry_after_s=max(0.05, wait))

    def _with_key(self, lease: Lease, endpoint: str, model: str, request: TagRequest,
                  call: _CallPlan) -> _Answer:
        """Upload (when needed) and generate with the same key; returns the model's text,
        what the call used (usageMetadata), why it stopped and Gemini's safety ratings."""
        uploaded = None
        media_parts = call.media_parts
        try:
            if media_parts is None:
                media_parts, uploaded = self._shared_video_parts(request, lease, endpoint,
                                                                 call)
            if not self.pool.stamp_sent(lease):  # stamped again when on the wire
                raise KeyCoolingDown("Gemini announced a wait for this key")
            client = self._client(endpoint)  # held: see _client
            with self._wire.sending(lease):
                response = client.models.generate_content(
                    model=model, contents=_contents(call, media_parts),
                    config=types.GenerateContentConfig(
                        **call.config, max_output_tokens=call.max_output_tokens,
                        http_options=_call_options(lease, call.timeout_ms)),
                )
        except errors.APIError as error:
            raise _failure(error) from None
        except (PermanentError, TransientError, KeyCoolingDown):
            raise
        except Exception as error:  # connection errors, timeouts: of the HTTP client
            if _cannot_connect(error):
                raise _RouteFailed("unreachable", "connection refused or no route") from None
            raise _KeyFailed(
                Outcome("failure", f"{type(error).__name__} talking to Gemini")
            ) from None
        finally:
            if uploaded is not None:
                self._delete(uploaded, lease, endpoint)
        return answer_of(response)

    # --- Batch mode (issue 27) ----------------------------------------------------------

    def prepare_batch(self, request: TagRequest) -> BatchEntry:
        """What `tag` would send, recorded for a Batch API job instead of sent. A video too
        large to go inline is uploaded to the Files API now, with a key the job must then
        use (a file belongs to its key's project); no generate request is sent, so the
        key's request slot is given back at once."""
        vocab = vocabulary.overlay(self.taxonomy, request.vocabulary)
        call = self._plan(request, vocab)
        endpoint = self._endpoint()
        lease = self._batch_key()
        media_parts, uploaded = call.media_parts, None
        if media_parts is None:
            try:
                media_parts, uploaded = self._video_parts(request, lease, endpoint)
            except errors.APIError as error:
                raise TransientError(f"could not upload the video to Gemini: HTTP "
                                     f"{error.code} {error.status or ''}".strip(),
                                     error_code=ErrorCode.GEMINI_UNAVAILABLE) from None
        inlined = types.InlinedRequest(
            model=self.model, contents=_contents(call, media_parts),
            config=types.GenerateContentConfig(**call.config,
                                               max_output_tokens=call.max_output_tokens))
        return BatchEntry(key_id=lease.key_id, endpoint=endpoint, model=self.model,
                          request=inlined.model_dump(mode="json", exclude_none=True),
                          uploaded_file=uploaded.name if uploaded is not None else None)

    def _batch_key(self) -> Lease:
        """A key for a batch request: the pool's next key when one is free (its request
        slot given back at once: batch requests have their own limits), else the key
        free soonest — a batch task never waits for an interactive request slot."""
        lease = self.pool.acquire(0)
        if isinstance(lease, Lease):
            self.pool.release(lease)
            return lease
        ready = self.pool.redis.zrange(redis_keys.ACCOUNT_READY, 0, 0)
        if not ready:
            raise WaitForKey(f"no Gemini key usable: {lease.reason}", retry_after_s=60)
        key_id = ready[0].decode() if isinstance(ready[0], bytes) else ready[0]
        api_key = self.pool.redis.hget(redis_keys.account_info(key_id), "api_key")
        if not api_key:
            raise WaitForKey("no Gemini key usable: the pool is being rebuilt",
                             retry_after_s=5)
        return Lease(key_id, api_key.decode() if isinstance(api_key, bytes) else api_key,
                     "", "")

    def finish_batch(self, request: TagRequest, model: str,
                     response: types.GenerateContentResponse) -> TagResult:
        """One task's answer from a batch job, finished as `tag` finishes an interactive
        answer (vocabulary, moments, safety, usage), at the batch price. PermanentError
        when Gemini blocked it, TransientError when the answer is no usable JSON."""
        vocab = vocabulary.overlay(self.taxonomy, request.vocabulary)
        answer = answer_of(response)
        spent = priced(answer.usage, model, self.config.prices, batch=True)
        try:  # no retry with a larger budget here: a cut-off transcript keeps what it has
            parsed = parse_output(answer.text, request.dimensions,
                                  cut_transcript=answer.truncated)
        except ModelOutputError as error:
            raise TransientError(f"gemini batch answer unusable: {error}",
                                 error_code=ErrorCode.INVALID_MODEL_OUTPUT) from None
        return self._result(parsed, answer.ratings, request, vocab, model, spent)

    def batch_client(self, key_id: str, endpoint: str) -> genai.Client:
        """A client bound to one pooled key (batch jobs and their files belong to the key's
        project); TransientError when the key is no longer in the pool."""
        api_key = self.pool.redis.hget(redis_keys.account_info(key_id), "api_key")
        if not api_key:
            raise TransientError(f"Gemini key {key_id} is no longer in the pool",
                                 error_code=ErrorCode.GEMINI_KEY_GONE)
        if isinstance(api_key, bytes):
            api_key = api_key.decode()
        return self._file_client(Lease(key_id, api_key, "", ""), endpoint)

    # --- what the model sees -------------------------------------------------------------

    def _video_parts(self, request: TagRequest, lease: Lease, endpoint: str):
        """Inline bytes when the request fits INLINE_MAX_MB, else the Files API."""
        mime = MIME_TYPES.get(request.media.container, "video/mp4")
        source = request.source
        if source.size_bytes * 4 / 3 + 64 * 1024 <= self.config.inline_max_mb * 1024 * 1024:
            with source.open() as handle:  # bounded by INLINE_MAX_MB
                return [types.Part.from_bytes(data=handle.read(), mime_type=mime)], None
        client = self._file_client(lease, endpoint)
        with source.open() as handle:  # the SDK sends it in 8 MB chunks: read in place
            uploaded = client.files.upload(file=handle,
                                           config=types.UploadFileConfig(mime_type=mime))
        try:
            active = self._wait_active(client, uploaded)
        except BaseException:
            self._delete(uploaded, lease, endpoint)
            raise
        return [types.Part.from_uri(file_uri=active.uri, mime_type=active.mime_type or mime)], \
            uploaded

    def _shared_video_parts(self, request: TagRequest, lease: Lease, endpoint: str,
                            call: _CallPlan) -> tuple[list[types.Part], types.File | None]:
        """The video parts of this call: cut to `call.clip` with videoMetadata offsets, and
        an upload kept for the next part with the same key (returned as None: not this
        call's to delete)."""
        if call.uploads is None:
            return self._video_parts(request, lease, endpoint)
        slot = (lease.key_id, endpoint)
        if slot in call.uploads:
            parts = call.uploads[slot][2]
        else:
            parts, uploaded = self._video_parts(request, lease, endpoint)
            if uploaded is not None:
                call.uploads[slot] = (uploaded, lease, parts)
        start, end = call.clip or (0.0, request.media.duration_s)
        clip = types.VideoMetadata(start_offset=f"{start:g}s", end_offset=f"{end:g}s")
        return [part.model_copy(update={"video_metadata": clip}) for part in parts], None

    def _wait_active(self, client: genai.Client, uploaded: types.File) -> types.File:
        deadline = time.monotonic() + self.config.file_timeout_s
        current = uploaded
        while current.state != types.FileState.ACTIVE:
            if current.state == types.FileState.FAILED:
                raise PermanentError("Gemini could not process the video file",
                                     error_code=ErrorCode.GEMINI_FILE_FAILED)
            if time.monotonic() > deadline:
                raise TransientError("Gemini file processing took too long",
                                     error_code=ErrorCode.GEMINI_FILE_TIMEOUT)
            self.sleep(FILE_POLL_S)
            current = client.files.get(name=uploaded.name)
        return current

    def _delete(self, uploaded: types.File, lease: Lease, endpoint: str) -> None:
        try:
            client = self._file_client(lease, endpoint)  # held: see _client
            client.files.delete(name=uploaded.name)
        except Exception as error:  # files expire after 48 h anyway
            log.warning("could not delete Gemini file %s: %s", uploaded.name,
                        type(error).__name__)

    def _frames_parts(self, request: TagRequest) -> list[types.Part]:
        """Key frames, each after its MM:SS, then the audio track (TAG_INPUT=frames)."""
        parts: list[types.Part] = []
        for frame in request.frames:
            parts.append(types.Part.from_text(text=f"[{mmss(frame.t_s)}]"))
            parts.append(types.Part.from_bytes(data=Path(frame.path).read_bytes(),
                                               mime_type="image/jpeg"))
        if request.media.has_audio:
            with tempfile.TemporaryDirectory(prefix="vtt-audio-", dir=request.workdir) as folder:
                audio = extract_audio(request.source.location, Path(folder) / "audio_track.mp3")
                parts.append(types.Part.from_bytes(data=audio.read_bytes(),
                                                   mime_type="audio/mp3"))
        return parts


def speech_of(parsed: dict, request: TagRequest) -> dict[str, Any]:
    """The result's transcript fields from a parsed (or merged) answer; a translation
    that only repeats its segment's text is dropped."""
    segments = [s if s.translation != s.text else s.model_copy(update={"translation": None})
                for s in parsed.get("transcript") or []]
    translated = any(s.translation for s in segments)
    return {"transcript": segments,
            "spoken_language": parsed.get("spoken_language") if segments else None,
            "translated_to": request.translate_to if translated else None}


def _contents(call: _CallPlan, media_parts: list) -> list[types.Content]:
    """The constant instructions first (a prefix Gemini's implicit cache can reuse across
    tasks), then the video, then this video's facts."""
    return [types.Content(role="user", parts=[
        types.Part.from_text(text=call.prompt[0]), *media_parts,
        types.Part.from_text(text=call.prompt[1])])]


def rest_request(client: genai.Client, stored: dict) -> dict:
    """A recorded request (`BatchEntry.request`) as the REST GenerateContentRequest a JSONL
    input file line carries — the SDK's own conversion, as `batches.create` does it for
    inline requests (google-genai 3.6.1; private, pinned in requirements.txt)."""
    inlined = types.InlinedRequest.model_validate(stored)
    converted = genai_batches._InlinedRequest_to_mldev(client._api_client, inlined)
    return _common.encode_unserializable_types(_common.convert_to_dict(converted))["request"]


@dataclass(frozen=True)
class BatchEntry:
    """A task's request recorded for a Batch API job: the key and endpoint that must send
    it, the model, the request (an `InlinedRequest` as JSON) and the uploaded video file
    (deleted once the task leaves its job)."""

    key_id: str
    endpoint: str
    model: str
    request: dict
    uploaded_file: str | None = None


def answer_of(response: types.GenerateContentResponse) -> _Answer:
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
    return _Answer(text=response.text or "", usage=spent, ratings=ratings,
                   finish_reason=getattr(finish, "name", None) or (finish and str(finish)))


def _call_options(lease: Lease, timeout_ms: int) -> types.HttpOptions:
    """A fresh options object per call (the SDK may modify the one it is given): the
    lease's key and the call's own timeout."""
    return types.HttpOptions(headers={"x-goog-api-key": lease.api_key}, timeout=timeout_ms)


MEDIA_RESOLUTIONS = {
    "low": types.MediaResolution.MEDIA_RESOLUTION_LOW,
    "medium": types.MediaResolution.MEDIA_RESOLUTION_MEDIUM,
    "high": types.MediaResolution.MEDIA_RESOLUTION_HIGH,
}

FRAME_TOKENS = {"low": 66, "medium": 258, "high": 258}
"""Input tokens per video frame (Gemini samples 1 frame/s) or image, by media resolution."""

AUDIO_TOKENS_PER_S = 32
PROMPT_TOKENS = 1500
"""System instruction, instructions and response schema, about (measured from
usageMetadata of a text-only request with the largest schema)."""


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


BATCH_PRICE_SHARE = 0.5
"""Batch API requests cost half the interactive price (ai.google.dev, Batch API guide)."""


@dataclass
class _CallPlan:
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
    uploads: dict | None = None
    """(key id, endpoint) → (uploaded file, lease): a long video's parts share an upload
    per key (a file belongs to the key's project); deleted when the last part is in."""
    shortened: bool = False
    """Asked again after an answer was cut off: more output tokens, fewer moments."""
    transcribe: bool = False
    """The answer carries a transcript (cut at a whole segment if cut off again)."""

    def shortened_plan(self) -> _CallPlan:
        return dataclasses.replace(
            self, shortened=True,
            max_output_tokens=min(MAX_OUTPUT_TOKENS, 2 * self.max_output_tokens),
            prompt=(self.prompt[0],
                    self.prompt[1] + "\n\n" + template("shorter", self.language)))


@dataclass(frozen=True)
class _FailedOver:
    """A call that did not answer; `key_failed`: the key's own failure (the others are
    the model's or the endpoint's, or a key that was never sent)."""

    reason: str
    key_failed: bool = False


@dataclass(frozen=True)
class _Answer:
    """What one generate call gave: the text, its usage, why it stopped, Gemini's own
    safety ratings."""

    text: str
    usage: Usage
    finish_reason: str | None = None
    ratings: list[GeminiSafetyRating] = dataclasses.field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "MAX_TOKENS"


class _ModelOverloaded(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _RouteFailed(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.reason = kind, reason


def _failure(error: errors.APIError) -> Exception:
    """Whose problem an error is: the model's (503 UNAVAILABLE, 504 DEADLINE_EXCEEDED:
    overload), the route's (400 FAILED_PRECONDITION "User location is not supported"), or
    the key's / the request's (`classify`). 500 INTERNAL is nobody's fault in particular:
    no penalty for the key, the next try goes to another key."""
    status = f"HTTP {error.code} {error.status or ''}".strip()
    if error.code in (503, 504):
        return _ModelOverloaded(status)
    if error.code == 400 and "location is not supported" in (error.message or "").lower():
        return _RouteFailed("region", f"{status}: user location is not supported")
    if error.code == 500:
        return _KeyFailed(Outcome("neutral", status))
    return _KeyFailed(classify(error))


def _cannot_connect(error: BaseException) -> bool:
    """The endpoint is not there (refused, no route, DNS): the HTTP client's ConnectError
    or an OSError about connecting somewhere in its causes."""
    seen: BaseException | None = error
    for _ in range(6):
        if seen is None:
            return False
        if type(seen).__name__ in ("ConnectError", "ConnectTimeout") or isinstance(
                seen, ConnectionRefusedError | socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class KeyCoolingDown(Exception):
    """Gemini announced a wait for the lease's key after it was granted: the request is
    not sent (the lease is refunded) and the next key is tried."""


class OnTheWire:
    """Stamps a request's window entry the moment its generateContent request goes on the
    wire — the body built and encoded, a large inline video included — and measures how
    long the body takes to send, from which the pool sizes its send margin.

    Runs as an httpx request hook in the calling thread; `sending(lease)` says which
    lease the thread's next generateContent request belongs to."""

    def __init__(self, pool: AccountPool) -> None:
        self.pool = pool
        self._local = threading.local()

    @contextlib.contextmanager
    def sending(self, lease: Lease) -> Iterator[None]:
        self._local.lease = lease
        try:
            yield
        finally:
            self._local.lease = None

    def on_request(self, request: Any) -> None:
        lease = getattr(self._local, "lease", None)
        if lease is None or not request.url.path.endswith(":generateContent"):
            return
        self._local.lease = None  # one stamp per call
        if not self.pool.stamp_sent(lease):
            raise KeyCoolingDown("Gemini announced a wait for this key")
        started = time.monotonic()

        def trace(event: str, info: dict) -> None:
            if event.endswith("send_request_body.complete"):
                with contextlib.suppress(TransientError):  # a measurement, never a failure
                    self.pool.record_send_latency(time.monotonic() - started)

        request.extensions = {**request.extensions, "trace": trace}


class _KeyFailed(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


def _details(error: errors.APIError) -> list[dict]:
    body = error.details if isinstance(error.details, dict) else {}
    inner = body.get("error", body)
    details = inner.get("details") if isinstance(inner, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _retry_delay_s(details: list[dict]) -> float | None:
    """RetryInfo's `retryDelay` in seconds; None when there is none (or it is unreadable)."""
    for item in details:
        if item.get("@type", "").endswith("RetryInfo"):
            text = str(item.get("retryDelay", "")).rstrip("s")
            try:
                return max(0.0, float(text))
            except ValueError:
                return None
    return None


def quota_scope(quota_ids: list[str]) -> str:
    """`project` when the QuotaFailure names a per-project quota (or a per-model one:
    Gemini's model quotas, tokens per minute included, are the project's), else `key`: a
    quota about the key itself, or a 429 that named none."""
    if any("PerProject" in q or "PerModel" in q for q in quota_ids):
        return "project"
    return "key"


def classify(error: errors.APIError) -> Outcome:
    """What an error says about the key (Google's documented error bodies)."""
    details = _details(error)
    status = f"HTTP {error.code} {error.status or ''}".strip()
    if error.code == 429:
        quota_ids = [v.get("quotaId", "") for d in details
                     if d.get("@type", "").endswith("QuotaFailure")
                     for v in d.get("violations", []) if isinstance(v, dict)]
        scope = quota_scope(quota_ids)
        if any("PerDay" in q for q in quota_ids):
            return Outcome("day", f"{status}: daily quota exhausted", scope=scope)
        if any("Token" in q for q in quota_ids):  # tokens per minute: no request-count lesson
            return Outcome("tokens", f"{status}: per-minute input tokens",
                           retry_delay_s=_retry_delay_s(details), scope=scope)
        if quota_ids or _retry_delay_s(details) is not None:
            return Outcome("minute", f"{status}: per-minute quota",
                           retry_delay_s=_retry_delay_s(details), scope=scope)
        return Outcome("failure", f"{status}: Gemini out of capacity")
    if error.code == 400:
        if any(d.get("reason") == "API_KEY_INVALID" for d in details):
            return Outcome("disabled", "API_KEY_INVALID")
        raise PermanentError(f"Gemini refused the request: {_reason(error, details)}",
                             error_code=ErrorCode.GEMINI_BAD_REQUEST)
    if error.code in (401, 403):
        return Outcome("disabled", _reason(error, details))
    return Outcome("failure", status)


def _reason(error: errors.APIError, details: list[dict]) -> str:
    """Status and `ErrorInfo.reason` when Google gives one (the message then adds nothing),
    else the message — redacted either way: Google's messages can quote the key."""
    status = f"HTTP {error.code} {error.status or ''}".strip()
    reasons = [d["reason"] for d in details
               if d.get("@type", "").endswith("ErrorInfo") and d.get("reason")]
    if reasons:
        return f"{status} ({reasons[0]})"
    return f"{status}: {redact(error.message or 'no message')[:200]}"


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
