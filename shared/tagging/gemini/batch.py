"""Batch mode (issue 27): what `tag` would send, recorded for a Batch API job instead of
sent; a job's answer for one task finished as an interactive answer is, at the batch
price; a recorded request as the REST line of a JSONL input file."""

from __future__ import annotations

from dataclasses import dataclass

from google import genai
from google.genai import _common, errors, types
from google.genai import batches as genai_batches

from shared.errors import ErrorCode, TransientError
from shared.tagging import taxonomy
from shared.tagging.base import TagRequest
from shared.tagging.gemini.answers import answer_of, result_of
from shared.tagging.gemini.keys import KeyChoice
from shared.tagging.gemini.media import Media
from shared.tagging.gemini.plan import contents, plan_call
from shared.tagging.gemini.pricing import priced
from shared.tagging.gemini_config import GeminiConfig
from shared.tagging.prompting import ModelOutputError, parse_output
from shared.tagging.result import TagResult


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


def prepare(config: GeminiConfig, keys: KeyChoice, media: Media, request: TagRequest,
            vocab: taxonomy.Taxonomy) -> BatchEntry:
    """What `tag` would send, recorded for a Batch API job instead of sent. A video too
    large to go inline is uploaded to the Files API now, with a key the job must then
    use (a file belongs to its key's project); no generate request is sent, so the
    key's request slot is given back at once."""
    call = plan_call(config, request, vocab)
    endpoint = keys.endpoint()
    lease = keys.batch_key()
    media_parts, uploaded = call.media_parts, None
    if media_parts is None:
        try:
            media_parts, uploaded = media.video_parts(request, lease, endpoint)
        except errors.APIError as error:
            raise TransientError(f"could not upload the video to Gemini: HTTP "
                                 f"{error.code} {error.status or ''}".strip(),
                                 error_code=ErrorCode.GEMINI_UNAVAILABLE) from None
    inlined = types.InlinedRequest(
        model=config.model, contents=contents(call, media_parts),
        config=types.GenerateContentConfig(**call.config,
                                           max_output_tokens=call.max_output_tokens))
    return BatchEntry(key_id=lease.key_id, endpoint=endpoint, model=config.model,
                      request=inlined.model_dump(mode="json", exclude_none=True),
                      uploaded_file=uploaded.name if uploaded is not None else None)


def finish(config: GeminiConfig, request: TagRequest, vocab: taxonomy.Taxonomy, model: str,
           response: types.GenerateContentResponse, prompt_version: str) -> TagResult:
    """One task's answer from a batch job, finished as `tag` finishes an interactive
    answer (vocabulary, moments, safety, usage), at the batch price. PermanentError
    when Gemini blocked it, TransientError when the answer is no usable JSON."""
    answer = answer_of(response)
    spent = priced(answer.usage, model, config.prices, batch=True)
    try:  # no retry with a larger budget here: a cut-off transcript keeps what it has
        parsed = parse_output(answer.text, request.dimensions,
                              cut_transcript=answer.truncated)
    except ModelOutputError as error:
        raise TransientError(f"gemini batch answer unusable: {error}",
                             error_code=ErrorCode.INVALID_MODEL_OUTPUT) from None
    return result_of(parsed, answer.ratings, request, vocab, model, spent, prompt_version)


def rest_request(client: genai.Client, stored: dict) -> dict:
    """A recorded request (`BatchEntry.request`) as the REST GenerateContentRequest a JSONL
    input file line carries — the SDK's own conversion, as `batches.create` does it for
    inline requests (google-genai 3.6.1; private, pinned in requirements.txt)."""
    inlined = types.InlinedRequest.model_validate(stored)
    converted = genai_batches._InlinedRequest_to_mldev(client._api_client, inlined)
    return _common.encode_unserializable_types(_common.convert_to_dict(converted))["request"]
