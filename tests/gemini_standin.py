"""A local stand-in for the Gemini REST API, spoken to by the real google-genai client
(wire facts in ../shared/reference/gemini-api.md): generateContent, the resumable Files
API upload, files.get/delete/download, the Batch API (batchGenerateContent, batches
get/list/delete: job states over polls, inline and file results, failed items, failed or
expired jobs; docs/decisions.md, issue 27), embedContent and batchEmbedContents
(deterministic vectors from the words of the text, issue 38), and Google's error bodies.
Behaviour is chosen per API key.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import math
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any


def error_body(code: int, status: str, message: str, details: list | None = None) -> dict:
    return {"error": {"code": code, "status": status, "message": message,
                      "details": details or []}}


QUOTA = "type.googleapis.com/google.rpc.QuotaFailure"
RETRY = "type.googleapis.com/google.rpc.RetryInfo"
ERRORS = {
    "minute": (429, error_body(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.", [
        {"@type": QUOTA, "violations": [{"quotaId":
                                         "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
        {"@type": RETRY, "retryDelay": "41s"}])),
    "day": (429, error_body(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.", [
        {"@type": QUOTA, "violations": [{"quotaId":
                                         "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
        {"@type": RETRY, "retryDelay": "0s"}])),
    "minute_key": (429, error_body(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.", [
        {"@type": QUOTA, "violations": [{"quotaId": "GenerateRequestsPerMinutePerUser"}]},
        {"@type": RETRY, "retryDelay": "41s"}])),
    "bare429": (429, error_body(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.")),
    "invalid": (400, error_body(400, "INVALID_ARGUMENT", "API key not valid.", [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
         "domain": "googleapis.com"}])),
    "badrequest": (400, error_body(400, "INVALID_ARGUMENT", "Request has an invalid argument.")),
    "forbidden": (403, error_body(403, "PERMISSION_DENIED", "Consumer has been suspended.")),
    "region": (400, error_body(400, "FAILED_PRECONDITION",
                               "User location is not supported for the API use.")),
    "500": (500, error_body(500, "INTERNAL", "An internal error has occurred.")),
    "503": (503, error_body(503, "UNAVAILABLE", "The model is overloaded.")),
}


BLOCKING_RATINGS = [
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"}]
"""What Gemini sends with a SAFETY block: the category that blocked, and the others."""

MODEL_GET = re.compile(r"^/v1(beta)?/models/[^/:]+$")
"""models.get: the SDK asks /v1beta/models/{model} of Google and /v1/… of a base_url."""

QUOTING_ERRORS = ("suspended", "suspended_info", "badrequest_quoting")
"""Google's own errors that quote the caller's API key in their message."""


def quoting_error(behaviour: str, key: str) -> tuple[int, dict]:
    """The 403 Google answers for a suspended key (with or without ErrorInfo), and a 400
    whose message quotes the key, as relays and proxies do."""
    if behaviour == "badrequest_quoting":
        return 400, error_body(400, "INVALID_ARGUMENT",
                               f"Invalid request for key={key}: contents is not valid")
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "CONSUMER_SUSPENDED", "domain": "googleapis.com",
                "metadata": {"consumer": f"api_key:{key}"}}] \
        if behaviour == "suspended_info" else []
    return 403, error_body(403, "PERMISSION_DENIED",
                           f"Permission denied: Consumer 'api_key:{key}' has been suspended.",
                           details)


SPEAKERS = ("A", "B")
SENTENCES = ("大家好，欢迎来到今天的节目", "今天我们来聊一聊这款新产品的三个亮点",
             "第一是续航，充满电可以用两天", "记得点赞关注，我们下期再见")
TRANSLATIONS = ("Hello everyone, welcome to today's show",
                "Today let's talk about three highlights of this new product",
                "First, battery life: a full charge lasts two days",
                "Remember to like and follow, see you next time")
SEGMENT_S = 3.0
"""The stand-in's speech: a sentence every SEGMENT_S, two voices taking turns."""


def speech(start_s: float, end_s: float, translated: bool) -> list[dict]:
    """Transcript segments over [start_s, end_s) as Gemini writes them (MM:SS.s)."""
    segments, at, index = [], start_s, 0
    while at + 0.5 < end_s:
        until = min(at + SEGMENT_S - 0.2, end_s)
        item = {"start": clock(at + 0.1), "end": clock(until),
                "speaker": SPEAKERS[index % 2], "text": SENTENCES[index % len(SENTENCES)]}
        if translated:
            item["translation"] = TRANSLATIONS[index % len(TRANSLATIONS)]
        segments.append(item)
        at, index = at + SEGMENT_S, index + 1
    return segments


def clock(seconds: float) -> str:
    return f"{int(seconds // 60):02d}:{seconds % 60:04.1f}"


def spoken_span(body: dict) -> tuple[float, float]:
    """The seconds the request is about: its clip (videoMetadata), else the whole video
    (the length its facts say, MM:SS)."""
    parts = [p for c in body.get("contents", []) for p in c.get("parts", [])]
    clip = next((p.get("videoMetadata") or p.get("video_metadata") for p in parts
                 if p.get("videoMetadata") or p.get("video_metadata")), None)
    if clip:
        return tuple(float(str(clip.get(f"{edge}Offset") or clip.get(f"{edge}_offset"))
                           .rstrip("s")) for edge in ("start", "end"))  # type: ignore
    facts = parts[-1].get("text", "") if parts else ""
    found = re.search(r"(\d+):(\d\d)", facts)
    return 0.0, (int(found.group(1)) * 60 + int(found.group(2))) if found else 10.0


def fill(schema: dict[str, Any], path: str = "", answers: dict | None = None) -> Any:
    """A plausible answer for a Gemini response schema (upper-case OpenAPI subset);
    `answers` gives the answer for some paths (e.g. "vision.characters")."""
    if answers and path in answers:
        return answers[path]
    kind = str(schema.get("type", "OBJECT")).upper()
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "OBJECT":
        return {name: fill(sub, f"{path}.{name}" if path else name, answers)
                for name, sub in schema.get("properties", {}).items()}
    if kind == "ARRAY":
        item = schema.get("items", {})
        props = item.get("properties", {})
        if "tag" in props:
            return [{"tag": f"{path}-标签", "confidence": 0.9},
                    {"tag": f"{path}-次要", "confidence": 1.7}]
        if "text" in props:
            return [{"start": "00:00.5", "end": "00:02.5", "speaker": "A", "text": "大家好"}]
        if "start" in props:
            return [{"start": "00:01", "end": "00:02", "description": "开场", "tags": ["开场"]}]
        return [f"{path}-项"]
    if kind in ("NUMBER", "INTEGER"):
        return 1
    return f"{path}-文本"


@dataclass
class Recorded:
    method: str
    path: str
    api_key: str | None
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class GeminiStandIn:
    behaviours: dict[str, str] = field(default_factory=dict)
    """api key → ok | minute | minute_key (a 429 about the key, not its project) | day
    | bare429 | invalid | badrequest | forbidden | 500 | 503 | slow | badjson | badjson_once
    | truncated | truncated_once | transcript_cut | transcript_cut_once (cut off inside the
    transcript; `_once`: while maxOutputTokens is at most `cut_at`) | safety | blocked
    | file_failed | suspended | suspended_info | badrequest_quoting | region; models.get
    (the free key check) answers the same errors, and `slow` sleeps `slow_s` before
    answering it too"""
    processing_polls: int = 1
    """files.get answers PROCESSING this many times before ACTIVE."""
    slow_s: float = 3.0
    overloaded_until: float = 0.0
    """Until this time.monotonic(), generate calls to `overloaded_models` answer 503."""
    overloaded_models: tuple[str, ...] = ("gemini-2.5-flash",)
    refuse_location: bool = False
    """Every generate call answers 400 FAILED_PRECONDITION (an exit region Gemini refuses)."""
    prompt_tokens: int = 0
    """When set, the promptTokenCount every answer reports."""
    fail_after: int | None = None
    """After this many answered generate calls, every further one answers 500."""
    answered: list[float] = field(default_factory=list)
    cut_at: int = 8192
    """`truncated_once`: answers cut off (MAX_TOKENS) while maxOutputTokens is at most this."""
    answers: dict[str, Any] = field(default_factory=dict)
    """Fixed answers for some schema paths (e.g. {"vision.characters": [...]})."""
    _prefixes: set = field(default_factory=set)
    tpm_limit: int = 0
    """Per project and model: input tokens accepted per `window_s` (0 = no limit); above it
    the real 429 with a tokens-per-minute quota id."""
    token_log: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    token_429s: int = 0
    token_accepted_at: list[float] = field(default_factory=list)
    rate_limit: int = 0
    """Per project and model, as Gemini counts: generate calls accepted per `window_s` (0 =
    no limit); above it the real per-minute 429 body (QuotaFailure
    GenerateRequestsPerMinutePerProjectPerModel), with RetryInfo until the oldest call of
    the project's window leaves it."""
    model_rate_limits: dict[str, int] = field(default_factory=dict)
    """model → its own `rate_limit` (others: `rate_limit`)."""
    projects: dict[str, str] = field(default_factory=dict)
    """api key → its Google Cloud project; a key not listed is a project of its own."""
    project_accepted: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    """(project, model) → when its calls were accepted (what the window counts)."""
    model_accepted: dict[str, list[float]] = field(default_factory=dict)
    accepted_calls: list[tuple[str, str, float]] = field(default_factory=list)
    """(project, model, time) of every call the rate limit accepted."""
    window_s: float = 60.0
    whole_second_delays: bool = False
    """Per-minute 429s give `retryDelay` in whole seconds (rounded up), as Gemini does;
    False: to the millisecond (tests on windows of a second or two)."""
    accepted: dict[str, list[float]] = field(default_factory=dict)
    refused: dict[str, list[float]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    files: dict[str, dict] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    batch_pending_polls: int = 1
    """batches.get answers BATCH_STATE_PENDING this many times, then RUNNING..."""
    batch_running_polls: int = 1
    """...this many times, then the job's end."""
    batch_ends: dict[str, str] = field(default_factory=dict)
    """api key → how its jobs end: BATCH_STATE_FAILED | BATCH_STATE_CANCELLED |
    BATCH_STATE_EXPIRED (default: BATCH_STATE_SUCCEEDED)."""
    failed_items: set[str] = field(default_factory=set)
    """Request keys (task ids) whose item answers an error status instead of a response."""
    extra_output_lines: list[str] = field(default_factory=list)
    """Raw lines added to every output file (an unknown key, a malformed line)."""
    batches: dict[str, dict] = field(default_factory=dict)
    embed_refusal: str | None = None
    """`minute` | `day`: embedding calls past `embed_accepted_calls` answer the real 429 of
    the embedding model's per-minute (RetryInfo `embed_retry_delay_s`) or daily quota."""
    embed_accepted_calls: int = 0
    embed_retry_delay_s: float = 1.0
    embedded_texts: int = 0

    def start(self) -> GeminiStandIn:
        standin = self
        self._rate_lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                standin.route(self, "POST")

            def do_GET(self) -> None:  # noqa: N802
                standin.route(self, "GET")

            def do_DELETE(self) -> None:  # noqa: N802
                standin.route(self, "DELETE")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- routing -----------------------------------------------------------------------

    def route(self, handler, method: str) -> None:
        raw = handler._body() if method == "POST" else b""
        key = handler.headers.get("x-goog-api-key")
        path = handler.path.split("?")[0]
        try:
            body = json.loads(raw) if raw and path.endswith(":generateContent") else None
        except ValueError:
            body = None
        if path.startswith("/upload-session/"):
            self.requests.append(Recorded(method, path, key, len(raw)))
            return self.finish_upload(handler, path.rsplit("/", 1)[1], raw)
        self.requests.append(Recorded(method, path, key, body or (json.loads(raw) if raw
                                                                    else None),
                                      dict(handler.headers)))
        behaviour = self.behaviours.get(key or "", "ok")
        if behaviour in QUOTING_ERRORS and not path.startswith("/v1/files"):
            return handler._send(*quoting_error(behaviour, key or ""))
        if behaviour in ERRORS and not path.startswith("/v1/files"):
            code, error = ERRORS[behaviour]
            return handler._send(code, error)
        if path.endswith(":batchGenerateContent"):
            return self.create_batch(handler, key, path, json.loads(raw or b"{}"))
        if path.startswith("/v1/batches"):
            return self.batch_call(handler, method, path)
        if path.endswith(":download"):  # the SDK's files.download (?alt=media)
            return self.download(handler, path)
        if path.startswith("/upload/v1/files"):
            return self.start_upload(handler, key)
        if path.startswith("/v1/files/"):
            return self.file_call(handler, method, path.rsplit("/", 1)[1])
        if path.endswith(":generateContent"):
            return self.generate(handler, key, behaviour, body or {})
        if path.endswith((":embedContent", ":batchEmbedContents")):
            return self.embed(handler, key, path, json.loads(raw or b"{}"))
        if method == "GET" and MODEL_GET.match(path):
            return self.model_get(handler, path.rsplit("/", 1)[1], behaviour)
        handler._send(404, error_body(404, "NOT_FOUND", f"no route {path}"))

    def model_get(self, handler, model: str, behaviour: str) -> None:
        """models.get: the model's description (what the SDK's `client.models.get` reads)."""
        if self.refuse_location:
            return handler._send(*ERRORS["region"])
        if behaviour == "slow":
            time.sleep(self.slow_s)
        handler._send(200, {"name": f"models/{model}", "displayName": model,
                            "version": "001", "inputTokenLimit": 1048576,
                            "outputTokenLimit": 65536,
                            "supportedGenerationMethods": ["generateContent"]})

    def project_of(self, key: str) -> str:
        return self.projects.get(key, f"key:{key}")

    def over_tokens(self, key: str, tokens: int, model: str = "") -> float | None:
        """Seconds until `tokens` more fit the project's token window for the model, when
        they do not now."""
        if not self.tpm_limit:
            return None
        bucket = f"{self.project_of(key)}/{model}"
        with self._rate_lock:
            now = time.monotonic()
            recent = [(t, n) for t, n in self.token_log.get(bucket, [])
                      if t > now - self.window_s]
            if sum(n for _, n in recent) + tokens > self.tpm_limit:
                self.token_429s += 1
                return recent[0][0] + self.window_s - now if recent else self.window_s
            self.token_log[bucket] = [*recent, (now, tokens)]
            self.token_accepted_at.append(now)
        return None

    def over_rate(self, key: str, model: str = "") -> float | None:
        """Seconds until the key's project may call the model again, when the call now
        would exceed the limit."""
        limit = self.model_rate_limits.get(model, self.rate_limit)
        if not limit:
            return None
        bucket = (self.project_of(key), model)
        with self._rate_lock:
            now = time.monotonic()
            recent = [t for t in self.project_accepted.get(bucket, []) if t > now - self.window_s]
            if len(recent) >= limit:
                self.refused.setdefault(key, []).append(now)
                return recent[0] + self.window_s - now
            self.project_accepted[bucket] = [*recent, now]
            self.accepted.setdefault(key, []).append(now)
            self.model_accepted.setdefault(model, []).append(now)
            self.accepted_calls.append((bucket[0], model, now))
        return None

    def generate(self, handler, key: str | None, behaviour: str, body: dict) -> None:
        if self.refuse_location:
            return handler._send(400, error_body(
                400, "FAILED_PRECONDITION", "User location is not supported for the API use."))
        model = handler.path.split("/models/")[-1].split(":")[0]
        if time.monotonic() < self.overloaded_until and model in self.overloaded_models:
            return handler._send(503, error_body(
                503, "UNAVAILABLE", "The model is overloaded. Please try again later."))
        usage = self.usage(body)
        wait = self.over_tokens(key or "", usage["promptTokenCount"], model)
        if wait is not None:
            return handler._send(429, error_body(429, "RESOURCE_EXHAUSTED",
                                                 "Resource has been exhausted.", [
                {"@type": QUOTA, "violations": [{"quotaId":
                 "GenerateContentInputTokensPerModelPerMinute-PaidTier"}]},
                {"@type": RETRY, "retryDelay": f"{max(0.0, wait):.3f}s"}]))
        wait = self.over_rate(key or "", model)
        if wait is not None:
            code, error = ERRORS["minute"]
            error = json.loads(json.dumps(error))
            error["error"]["details"][1]["retryDelay"] = (
                f"{math.ceil(wait)}s" if self.whole_second_delays else f"{max(0.0, wait):.3f}s")
            return handler._send(code, error)
        if behaviour == "slow":
            time.sleep(self.slow_s)
        if behaviour == "blocked":
            return handler._send(200, {"promptFeedback": {"blockReason": "SAFETY",
                                                          "safetyRatings": BLOCKING_RATINGS},
                                       "usageMetadata": {"promptTokenCount": 10}})
        if behaviour == "safety":
            return handler._send(200, {"candidates": [{"finishReason": "SAFETY", "index": 0,
                                                       "safetyRatings": BLOCKING_RATINGS}],
                                       "usageMetadata": {"promptTokenCount": 10}})
        if self.fail_after is not None and len(self.answered) >= self.fail_after:
            code, error = ERRORS["500"]
            return handler._send(code, error)
        config = body.get("generationConfig", {})
        schema = config.get("responseSchema") or config.get("responseJsonSchema") or {}
        answers = dict(self.answers)
        clip = next((p.get("videoMetadata") or p.get("video_metadata") for c in
                     body.get("contents", []) for p in c.get("parts", [])
                     if p.get("videoMetadata") or p.get("video_metadata")), None)
        if clip and "key_moments" not in answers:  # a part of a long video: a moment in it
            start = float(str(clip.get("startOffset") or clip.get("start_offset")).rstrip("s"))
            answers["key_moments"] = [{"start": start + 0.2, "end": start + 0.6,
                                       "description": f"片段 {start:g}",
                                       "tags": [f"片段{start:g}"]}]
            answers["summary"] = f"从 {start:g} 秒开始的一段"
        if "transcript" in schema.get("properties", {}):
            self.speak(answers, body, schema)
        text = json.dumps(fill(schema, answers=answers), ensure_ascii=False)
        self.answered.append(time.monotonic())
        finish = "STOP"
        if behaviour == "transcript_cut" or (behaviour == "transcript_cut_once"
                                             and config.get("maxOutputTokens", 0) <= self.cut_at):
            text, finish = cut_in_transcript(text), "MAX_TOKENS"
        if behaviour == "badjson" or (behaviour == "badjson_once"
                                      and not self._seen_badjson(key)):
            text = "{not json"
        if behaviour == "truncated" or (behaviour == "truncated_once"
                                        and config.get("maxOutputTokens", 0) <= self.cut_at):
            text, finish = text[: len(text) // 2], "MAX_TOKENS"  # cut off mid-JSON
        handler._send(200, {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                            "finishReason": finish, "index": 0,
                            "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT",
                                               "probability": "NEGLIGIBLE"}]}],
            "usageMetadata": usage,
            "modelVersion": "gemini-2.5-flash", "responseId": uuid.uuid4().hex,
        })

    def speak(self, answers: dict, body: dict, schema: dict) -> None:
        """The transcript of the seconds asked about (unless a test fixed it)."""
        start, end = spoken_span(body)
        translated = "translation" in schema["properties"]["transcript"]["items"]["properties"]
        answers.setdefault("transcript", speech(start, end, translated))
        answers.setdefault("spoken_language", "zh")

    def usage(self, body: dict) -> dict:
        """usageMetadata from what was received: text at 4 characters a token, inline media
        at 100 bytes a token (or `prompt_tokens` when set); a first text part seen before
        counts as cached (Gemini's implicit cache of a common prefix)."""
        parts = [p for c in body.get("contents", []) for p in c.get("parts", [])]
        prompt = self.prompt_tokens or sum(
            len(p.get("text", "")) // 4 + len(p.get("inlineData", {}).get("data", "")) // 100
            for p in parts)
        first = parts[0].get("text", "") if parts else ""
        cached = len(first) // 4 if first and first in self._prefixes else 0
        self._prefixes.add(first)
        return {"promptTokenCount": prompt, "cachedContentTokenCount": cached,
                "candidatesTokenCount": 321, "totalTokenCount": prompt + 321}

    def _seen_badjson(self, key: str | None) -> bool:
        """`badjson_once`: only the first generate call of the whole run is broken."""
        return len(self.generate_calls()) > 1

    # --- embeddings (issue 38) ------------------------------------------------------------

    def embed(self, handler, key: str | None, path: str, body: dict) -> None:
        """embedContent / batchEmbedContents: one vector per text (`vector_of`), in order;
        past `embed_accepted_calls` the 429 chosen by `embed_refusal`."""
        model = path.split("/models/")[-1].split(":")[0]
        calls = [r for r in self.requests if r.path.endswith("EmbedContents")
                 or r.path.endswith(":embedContent")]
        if self.embed_refusal and len(calls) > self.embed_accepted_calls:
            period = "Day" if self.embed_refusal == "day" else "Minute"
            return handler._send(429, error_body(429, "RESOURCE_EXHAUSTED",
                                                 "Resource has been exhausted.", [
                {"@type": QUOTA, "violations": [{"quotaId":
                 f"EmbedContentRequestsPer{period}PerProjectPerModel-FreeTier",
                 "quotaDimensions": {"model": model}}]},
                {"@type": RETRY, "retryDelay": f"{self.embed_retry_delay_s:.3f}s"}]))
        requests = body.get("requests") if path.endswith("batchEmbedContents") else [body]
        vectors = []
        for request in requests or []:
            text = " ".join(p.get("text", "") for p in request["content"]["parts"])
            vectors.append({"values": vector_of(text, request.get("outputDimensionality")
                                                or 3072)})
        self.embedded_texts += len(vectors)
        if path.endswith(":embedContent"):
            return handler._send(200, {"embedding": vectors[0]})
        handler._send(200, {"embeddings": vectors})

    # --- Files API ---------------------------------------------------------------------

    def start_upload(self, handler, key: str | None) -> None:
        upload_id = uuid.uuid4().hex[:12]
        self.files[upload_id] = {"key": key, "bytes": 0, "polls": 0, "data": bytearray(),
                                 "mime": handler.headers.get("X-Goog-Upload-Header-Content-Type")}
        handler._send(200, {}, {"X-Goog-Upload-URL": f"{self.base_url}/upload-session/{upload_id}",
                                "X-Goog-Upload-Status": "active"})

    def finish_upload(self, handler, upload_id: str, raw: bytes) -> None:
        record = self.files[upload_id]
        record["bytes"] += len(raw)
        record["data"] += raw
        command = handler.headers.get("X-Goog-Upload-Command", "")
        if "finalize" not in command:
            return handler._send(200, {}, {"X-Goog-Upload-Status": "active"})
        handler._send(200, {"file": self.file_json(upload_id, "PROCESSING")},
                      {"X-Goog-Upload-Status": "final"})

    def file_json(self, file_id: str, state: str) -> dict:
        return {"name": f"files/{file_id}", "state": state,
                "uri": f"{self.base_url}/v1/files/{file_id}",
                "mimeType": self.files[file_id]["mime"] or "video/mp4",
                "sizeBytes": str(self.files[file_id]["bytes"])}

    def file_call(self, handler, method: str, file_id: str) -> None:
        record = self.files.get(file_id)
        if record is None:
            return handler._send(404, error_body(404, "NOT_FOUND", "file not found"))
        if method == "DELETE":
            self.deleted.append(file_id)
            return handler._send(200, {})
        record["polls"] += 1
        if self.behaviours.get(record["key"] or "") == "file_failed":
            state = "FAILED"
        else:
            state = "PROCESSING" if record["polls"] <= self.processing_polls else "ACTIVE"
        handler._send(200, self.file_json(file_id, state))

    # --- Batch API -----------------------------------------------------------------------

    def create_batch(self, handler, key: str | None, path: str, body: dict) -> None:
        batch = body.get("batch", {})
        source = batch.get("inputConfig", {})
        if "fileName" in source:
            file_id = source["fileName"].rsplit("/", 1)[-1]
            record = self.files.get(file_id)
            if record is None:
                return handler._send(400, error_body(400, "INVALID_ARGUMENT",
                                                     "input file not found"))
            lines = [json.loads(line) for line in bytes(record["data"]).decode().splitlines()
                     if line.strip()]
            requests = [(line["key"], line["request"]) for line in lines]
        else:
            requests = [(item.get("metadata", {}).get("key"), item["request"])
                        for item in source.get("requests", {}).get("requests", [])]
        job_id = uuid.uuid4().hex[:12]
        self.batches[job_id] = {
            "name": f"batches/{job_id}", "displayName": batch.get("displayName", ""),
            "model": path.split("/models/")[-1].split(":")[0], "key": key,
            "requests": requests, "file": "fileName" in source, "polls": 0,
            "output": None, "created": time.time(), "deleted": False}
        handler._send(200, self.batch_json(job_id, "BATCH_STATE_PENDING"))

    def batch_state(self, job: dict) -> str:
        if job["polls"] <= self.batch_pending_polls:
            return "BATCH_STATE_PENDING"
        if job["polls"] <= self.batch_pending_polls + self.batch_running_polls:
            return "BATCH_STATE_RUNNING"
        return self.batch_ends.get(job["key"] or "", "BATCH_STATE_SUCCEEDED")

    def batch_json(self, job_id: str, state: str) -> dict:
        job = self.batches[job_id]
        metadata = {"@type": "type.googleapis.com/google.ai.generativelanguage.v1main."
                             "GenerateContentBatch",
                    "model": f"models/{job['model']}", "displayName": job["displayName"],
                    "state": state, "name": job["name"],
                    "batchStats": {"requestCount": str(len(job["requests"]))}}
        if state == "BATCH_STATE_SUCCEEDED":
            metadata["output"] = self.batch_output(job_id)
        return {"name": job["name"], "metadata": metadata,
                "done": state not in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING")}

    def batch_output(self, job_id: str) -> dict:
        """Each request answered as generateContent would answer it, once."""
        job = self.batches[job_id]
        if job["output"] is None:
            answers = []
            for request_key, request in job["requests"]:
                if request_key in self.failed_items:
                    answers.append({"key": request_key, "error": {
                        "code": 3, "message": "Request contains an invalid argument."}})
                    continue
                capture = _Capture(f"/v1/models/{job['model']}:generateContent")
                self.generate(capture, job["key"], "ok", request)
                answers.append({"key": request_key, "response": capture.body})
            if job["file"]:
                file_id = uuid.uuid4().hex[:12]
                text = "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers)
                text += "".join(line + "\n" for line in self.extra_output_lines)
                self.files[file_id] = {"key": job["key"], "bytes": len(text.encode()),
                                       "polls": 99, "data": bytearray(text.encode()),
                                       "mime": "application/jsonl"}
                job["output"] = {"responsesFile": f"files/{file_id}"}
            else:
                job["output"] = {"inlinedResponses": {"inlinedResponses": [
                    {"metadata": {"key": a["key"]},
                     **({"error": a["error"]} if "error" in a else {"response": a["response"]})}
                    for a in answers]}}
        return job["output"]

    def batch_call(self, handler, method: str, path: str) -> None:
        job_id = path.removeprefix("/v1/batches").strip("/").split(":")[0]
        if not job_id:
            return handler._send(200, {"operations": [
                self.batch_json(j, self.batch_state(b)) for j, b in
                reversed(list(self.batches.items())) if not b["deleted"]]})
        job = self.batches.get(job_id)
        if job is None:
            return handler._send(404, error_body(404, "NOT_FOUND", "batch not found"))
        if method == "DELETE":
            job["deleted"] = True
            return handler._send(200, {})
        job["polls"] += 1
        handler._send(200, self.batch_json(job_id, self.batch_state(job)))

    def download(self, handler, path: str) -> None:
        file_id = path.rsplit("/", 1)[-1].split(":")[0]
        record = self.files.get(file_id)
        if record is None or file_id in self.deleted:
            return handler._send(404, error_body(404, "NOT_FOUND", "file not found"))
        data = bytes(record["data"])
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def batch_jobs(self) -> list[dict]:
        return list(self.batches.values())

    # --- helpers for tests -------------------------------------------------------------

    def model_gets(self) -> list[Recorded]:
        return [r for r in self.requests
                if r.method == "GET" and MODEL_GET.match(r.path)]

    def generate_calls(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(":generateContent")]


def words_of(text: str) -> list[str]:
    """Latin words (lower case) and, for Chinese, overlapping character pairs."""
    found = re.findall(r"[a-z0-9]+", text.lower())
    for run in re.findall(r"[\u4e00-\u9fff]+", text):
        found += [run[i:i + 2] for i in range(max(1, len(run) - 1))]
    return found


def vector_of(text: str, dimensions: int) -> list[float]:
    """A hashed bag of words projected to `dimensions`, unit length: texts sharing words
    are close (cosine), word order does not matter, and the same text always gives the
    same vector."""
    vector = [0.0] * dimensions
    for word in words_of(text):
        digest = hashlib.sha256(word.encode()).digest()
        for n in range(0, 8, 2):  # each word spread over 4 dimensions
            slot = int.from_bytes(digest[n * 2:n * 2 + 4], "big") % dimensions
            vector[slot] += 1.0 if digest[16 + n] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [round(v / norm, 6) for v in vector]


def cut_in_transcript(text: str) -> str:
    """The answer cut off half-way through its transcript, inside a segment."""
    at = text.find('"transcript"')
    return text[:at + (len(text) - at) // 2 + 3]


class _Capture:
    """A handler that keeps what generate() answers (one batch item)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.code = 0
        self.body: Any = None

    def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.code, self.body = code, body
