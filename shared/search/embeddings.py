"""Embeddings from Gemini (issue 38): texts as unit vectors of `DIMENSIONS` numbers from
`gemini-embedding-001`, through the REST call `POST /v1beta/models/{model}:batchEmbedContents`
(up to 100 texts a call).

Every call takes a key from the AccountPool for the embedding model — counted in that
model's own quota windows of the key's project, as the pool counts every model — and
reports what Gemini answered, so a 429 is handled as for generateContent (the project or
the key cools down; `shared.tagging.gemini.classify` reads Google's error body). When no
key can take the call, `QuotaExhausted` says how long until one can: the fill job stops
there and a later run goes on. Every call is limited to `timeout_s`; the key travels in the
`x-goog-api-key` header only and never reaches a log or an error.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any

import requests
from google.genai import errors as genai_errors

from shared.accounts.pool import AccountPool, Lease, NoKeyAvailable, Outcome
from shared.errors import ErrorCode, PermanentError
from shared.redact import redact
from shared.tagging.gemini import classify

log = logging.getLogger("vision_to_tag.embeddings")

GOOGLE_ENDPOINT = "https://generativelanguage.googleapis.com"
DIMENSIONS = 768
"""Gemini's recommended shortened size (3,072 by default): a quarter of the index memory."""
MAX_BATCH = 100
"""Requests one batchEmbedContents call takes at most (Google's limit)."""
CONNECT_TIMEOUT_S = 5.0
MAX_KEY_ATTEMPTS = 4
"""Keys tried for one call before the caller is told to come back later."""
MAX_INPUT_TOKENS = 2048
"""gemini-embedding-001 reads this many tokens of a text (the rest is cut by Google)."""
CJK = re.compile(r"[\u3000-\u9fff\uac00-\ud7af\uff00-\uffef]")


class QuotaExhausted(Exception):
    """No key can take an embedding call now; one can in `retry_after_s`."""

    def __init__(self, reason: str, retry_after_s: float) -> None:
        super().__init__(f"embedding quota exhausted: {reason}")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class EmbeddingConfig:
    model: str = "gemini-embedding-001"
    endpoint: str = ""
    """GEMINI_BASE_URL's first endpoint; "" = Google's own."""
    timeout_s: float = 30.0
    batch: int = MAX_BATCH
    price_per_million: float = 0.15
    dimensions: int = DIMENSIONS


def estimate_tokens(text: str) -> int:
    """Input tokens of a text, as Gemini counts them near enough: a Chinese, Japanese or
    Korean character is about one token, other text about four characters a token.
    (batchEmbedContents reports no token counts: the pool and the cost use this.)"""
    wide = len(CJK.findall(text))
    return min(MAX_INPUT_TOKENS, wide + math.ceil((len(text) - wide) / 4))


class GeminiEmbedder:
    """`embed(texts, task)` → one vector per text, in order."""

    def __init__(self, pool: AccountPool, config: EmbeddingConfig,
                 http: requests.Session | None = None) -> None:
        self.pool = pool
        self.config = config
        self.http = http or requests.Session()
        self.url = (f"{(config.endpoint or GOOGLE_ENDPOINT).rstrip('/')}/v1beta/models/"
                    f"{config.model}:batchEmbedContents")

    def embed(self, texts: list[str], task: str = "RETRIEVAL_DOCUMENT") -> list[list[float]]:
        """`task`: RETRIEVAL_DOCUMENT for passages, RETRIEVAL_QUERY for a search."""
        vectors: list[list[float]] = []
        step = min(self.config.batch, MAX_BATCH)
        for start in range(0, len(texts), step):
            vectors += self._call(texts[start:start + step], task)
        return vectors

    def cost_usd(self, texts: list[str]) -> float:
        tokens = sum(estimate_tokens(text) for text in texts)
        return tokens * self.config.price_per_million / 1_000_000

    def _call(self, texts: list[str], task: str) -> list[list[float]]:
        """One batch, failing over between keys; QuotaExhausted when none is left."""
        tokens = sum(estimate_tokens(text) for text in texts)
        last = "no key tried"
        for _ in range(MAX_KEY_ATTEMPTS):
            lease = self.pool.acquire(tokens, self.config.model)
            if isinstance(lease, NoKeyAvailable):
                raise QuotaExhausted(lease.reason, lease.retry_after_s)
            if not self.pool.stamp_sent(lease):  # Gemini announced a wait meanwhile
                self.pool.release(lease)
                continue
            try:
                outcome, vectors = self._send(lease, texts, task)
            except PermanentError:  # the request's fault: the key is fine
                self.pool.report(lease.key_id, Outcome.success(), lease.member, lease=lease)
                raise
            self.pool.report(lease.key_id, outcome, lease.member, lease=lease)
            if vectors is not None:
                self.pool.record_usage(lease, tokens, 0,
                                       tokens * self.config.price_per_million / 1_000_000)
                return vectors
            last = outcome.reason
            log.info("embedding call failed over: %s", last, extra={"key_id": lease.key_id})
        raise QuotaExhausted(f"{MAX_KEY_ATTEMPTS} keys tried, the last: {last}", 60.0)

    def _send(self, lease: Lease, texts: list[str],
              task: str) -> tuple[Outcome, list[list[float]] | None]:
        """What Gemini said about the key, and the vectors when it answered them."""
        body = {"requests": [{"model": f"models/{self.config.model}",
                              "content": {"parts": [{"text": text}]}, "taskType": task,
                              "outputDimensionality": self.config.dimensions}
                             for text in texts]}
        try:
            answer = self.http.post(self.url, json=body, headers={"x-goog-api-key": lease.api_key},
                                    timeout=(min(CONNECT_TIMEOUT_S, self.config.timeout_s),
                                             self.config.timeout_s))
        except requests.RequestException as error:  # timeouts, refusals: never the key
            return Outcome("failure", f"{type(error).__name__} talking to Gemini"), None
        if answer.status_code == 200:
            return Outcome.success(), self._vectors(answer, len(texts))
        return _outcome(answer), None

    def _vectors(self, answer: requests.Response, count: int) -> list[list[float]]:
        try:
            found = [item["values"] for item in answer.json()["embeddings"]]
        except (ValueError, KeyError, TypeError):
            raise PermanentError("Gemini answered embeddings in an unknown shape",
                                 error_code=ErrorCode.INVALID_MODEL_OUTPUT) from None
        if len(found) != count or any(len(v) != self.config.dimensions for v in found):
            raise PermanentError(
                f"Gemini answered {len(found)} embeddings for {count} texts (of "
                f"{self.config.dimensions} numbers expected)",
                error_code=ErrorCode.INVALID_MODEL_OUTPUT)
        return [unit(vector) for vector in found]


def unit(vector: list[float]) -> list[float]:
    """Shortened Gemini embeddings are not unit length; cosine and dot product need them to be."""
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _outcome(answer: requests.Response) -> Outcome:
    """A refusal as the pool needs it, read from Google's error body (the same reading as
    for generateContent); a 400 that is the request's fault is raised, not retried."""
    if answer.status_code >= 500:
        return Outcome("neutral" if answer.status_code == 500 else "failure",
                       f"HTTP {answer.status_code}")
    try:
        payload: Any = answer.json()
    except ValueError:
        payload = {"error": {"message": redact(answer.text[:200])}}
    return classify(genai_errors.APIError(answer.status_code, payload))
