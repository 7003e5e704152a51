"""One answer from Gemini for a planned call, failing over between keys, endpoints and
models until GEMINI_DEADLINE_S: every outcome goes back to its owner (the key to the pool,
the model and the endpoint to their shared back-offs), a cut-off answer is asked again
with a larger output budget, invalid JSON once more."""

from __future__ import annotations

import logging
import time

from google.genai import errors, types

from shared.accounts.pool import AccountPool, Lease, Outcome
from shared.errors import ErrorCode, PermanentError, TransientError
from shared.tagging.base import TagRequest
from shared.tagging.gemini.answers import Answer, answer_of
from shared.tagging.gemini.failures import (
    FailedOver,
    KeyCoolingDown,
    KeyFailed,
    ModelOverloaded,
    RouteFailed,
    cannot_connect,
    failure_of,
)
from shared.tagging.gemini.keys import KeyChoice
from shared.tagging.gemini.media import Media
from shared.tagging.gemini.plan import CallPlan, contents
from shared.tagging.gemini.pricing import priced
from shared.tagging.gemini.wire import Clients, call_options
from shared.tagging.gemini_config import GeminiConfig
from shared.tagging.health import GeminiHealth, shown
from shared.tagging.prompting import ModelOutputError, parse_output
from shared.tagging.result import Usage, added

log = logging.getLogger("vision_to_tag.gemini")

MAX_KEY_ATTEMPTS = 8
"""Keys tried for one task before it goes back to the queue."""

JSON_RETRIES = 1
"""Invalid JSON from the model is asked again once, then it is a transient failure."""


class Asking:
    """Sends a planned call with key after key until one answers usably."""

    def __init__(self, pool: AccountPool, config: GeminiConfig, health: GeminiHealth,
                 keys: KeyChoice, clients: Clients, media: Media) -> None:
        self.pool = pool
        self.config = config
        self.health = health
        self.keys = keys
        self.clients = clients
        self.media = media

    def ask(self, request: TagRequest, call: CallPlan) -> tuple[dict, Answer, str, Usage]:
        """One answer from Gemini, failing over between keys, endpoints and models:
        (parsed answer, the call that gave it, its model, the usage of every call made)."""
        deadline = time.monotonic() + self.config.deadline_s
        total, bad_json, last_error = Usage(), 0, "no attempt"
        for _ in range(MAX_KEY_ATTEMPTS):
            model, endpoint = self.keys.model(), self.keys.endpoint()
            lease = self.keys.lease(deadline, call.tokens, model)
            answer = self._try_key(lease, endpoint, model, request, call)
            if isinstance(answer, FailedOver):
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
                 call: CallPlan) -> Answer | FailedOver:
        """One call with one key: its answer, or why it failed over, the failure reported
        to the pool (the key's) or to the shared back-offs (the model's, the endpoint's)."""
        try:
            return self._send(lease, endpoint, model, request, call)
        except PermanentError:
            self.pool.report(lease.key_id, Outcome.success(), lease=lease)  # the key is fine
            raise
        except ModelOverloaded as failure:
            self.pool.report(lease.key_id, Outcome("neutral", failure.reason), lease=lease)
            backoff = self.health.model_overloaded(model)
            reason = f"{model} overloaded ({failure.reason})"
            log.warning("%s; shared back-off %.0f s", reason, backoff)
            return FailedOver(reason)
        except RouteFailed as failure:
            self.pool.report(lease.key_id, Outcome("neutral", failure.reason), lease=lease)
            backoff = self.health.endpoint_failed(endpoint, failure.kind)
            reason = f"endpoint {shown(endpoint)}: {failure.reason}"
            log.warning("%s; endpoint backs off %.0f s", reason, backoff)
            return FailedOver(reason)
        except KeyCoolingDown as failure:  # never sent: refunded, no lesson
            self.pool.release(lease)
            return FailedOver(str(failure))
        except KeyFailed as failure:
            self.pool.report(lease.key_id, failure.outcome, lease.member, lease=lease)
            log.info("gemini key failed over: %s", failure.outcome.reason,
                     extra={"key_id": lease.key_id})
            return FailedOver(failure.outcome.reason, key_failed=True)

    def _send(self, lease: Lease, endpoint: str, model: str, request: TagRequest,
              call: CallPlan) -> Answer:
        """Upload (when needed) and generate with the same key; returns the model's text,
        what the call used (usageMetadata), why it stopped and Gemini's safety ratings."""
        uploaded = None
        media_parts = call.media_parts
        try:
            if media_parts is None:
                media_parts, uploaded = self.media.shared_video_parts(
                    request, lease, endpoint, call.clip, call.uploads)
            if not self.pool.stamp_sent(lease):  # stamped again when on the wire
                raise KeyCoolingDown("Gemini announced a wait for this key")
            client = self.clients.for_endpoint(endpoint)  # held: see wire.Clients
            with self.clients.wire.sending(lease):
                response = client.models.generate_content(
                    model=model, contents=contents(call, media_parts),
                    config=types.GenerateContentConfig(
                        **call.config, max_output_tokens=call.max_output_tokens,
                        http_options=call_options(lease, call.timeout_ms)),
                )
        except errors.APIError as error:
            raise failure_of(error) from None
        except (PermanentError, TransientError, KeyCoolingDown):
            raise
        except Exception as error:  # connection errors, timeouts: of the HTTP client
            if cannot_connect(error):
                raise RouteFailed("unreachable", "connection refused or no route") from None
            raise KeyFailed(
                Outcome("failure", f"{type(error).__name__} talking to Gemini")
            ) from None
        finally:
            if uploaded is not None:
                self.media.delete(uploaded, lease, endpoint)
        return answer_of(response)

    def _account_for(self, lease: Lease, spent: Usage) -> None:
        """One answered call: the real input tokens replace the estimate in the key's
        token window, and its tokens and cost go on the key's day (per-key spend)."""
        if spent.prompt_tokens:
            self.pool.record_tokens(lease, spent.prompt_tokens)
        self.pool.record_usage(lease, spent.prompt_tokens,
                               spent.output_tokens + spent.thinking_tokens, spent.cost_usd)
