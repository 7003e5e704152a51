"""GeminiTagger: one `generate_content` call per task for all requested dimensions,
with the API key chosen per call from the AccountPool (docs/tagging.md).

Every outcome goes back to the pool; on a 429, an invalid key, a 403, a 5xx or a timeout
the tagger fails over to the next key until `GEMINI_DEADLINE_S`. When no key is free the
task goes back to the queue with Retry-After = the pool's earliest free moment.

The tagger is the flow; each step is its own module: the call's plan (`plan`), the key,
model and endpoint (`keys`), the wire (`wire`), the video's parts and uploads (`media`),
failing over (`asking`, `failures`), windows of a long video (`long_video`), the result
(`answers`), Batch mode (`batch`), tokens and prices (`pricing`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from google import genai
from google.genai import types

from shared.accounts.pool import AccountPool
from shared.tagging import taxonomy, vocabulary, windows
from shared.tagging.base import TagRequest
from shared.tagging.gemini import batch
from shared.tagging.gemini.answers import result_of
from shared.tagging.gemini.asking import Asking
from shared.tagging.gemini.batch import BatchEntry
from shared.tagging.gemini.keys import KeyChoice
from shared.tagging.gemini.long_video import ask_in_windows
from shared.tagging.gemini.media import Media
from shared.tagging.gemini.plan import plan_call
from shared.tagging.gemini.wire import Clients, OnTheWire
from shared.tagging.gemini_config import GeminiConfig
from shared.tagging.health import GeminiHealth
from shared.tagging.prompting import prompt_version
from shared.tagging.result import TagResult


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
        self.health = health or GeminiHealth(pool.redis)
        self.keys = KeyChoice(pool, config, self.health, sleep)
        self.clients = Clients(OnTheWire(pool), config.timeout_s, config.endpoints[0], client)
        self.media = Media(self.clients, config.inline_max_mb, config.file_timeout_s, sleep)
        self.asking = Asking(pool, config, self.health, self.keys, self.clients, self.media)

    def check_quota(self) -> None:
        """WaitForKey unless a key frees within SHORT_WAIT_S (the key itself is taken when
        the request is ready to go)."""
        self.keys.check_quota()

    def tag(self, request: TagRequest) -> TagResult:
        """The vocabulary for this request; the video whole, or part by part when longer
        than GEMINI_WINDOW_S; the call planned, asked (failing over), finished."""
        vocab = vocabulary.overlay(self.taxonomy, request.vocabulary)
        parts = windows.plan(request.media.duration_s, self.config.window_s)
        if len(parts) > 1 and self.config.tag_input == "video":
            plan = functools.partial(plan_call, self.config, request, vocab)
            merged, ratings, model = ask_in_windows(request, parts, self.asking.ask, plan,
                                                    self.media)
            return result_of(merged, ratings, request, vocab, model, merged["usage"],
                             self.prompt_version)
        call = plan_call(self.config, request, vocab)
        parsed, answer, model, total = self.asking.ask(request, call)
        return result_of(parsed, answer.ratings, request, vocab, model, total,
                         self.prompt_version)

    # --- Batch mode (issue 27) ----------------------------------------------------------

    def prepare_batch(self, request: TagRequest) -> BatchEntry:
        """What `tag` would send, recorded for a Batch API job instead of sent (`batch`)."""
        vocab = vocabulary.overlay(self.taxonomy, request.vocabulary)
        return batch.prepare(self.config, self.keys, self.media, request, vocab)

    def finish_batch(self, request: TagRequest, model: str,
                     response: types.GenerateContentResponse) -> TagResult:
        """One task's answer from a batch job, finished as `tag` finishes one, at the
        batch price."""
        vocab = vocabulary.overlay(self.taxonomy, request.vocabulary)
        return batch.finish(self.config, request, vocab, model, response, self.prompt_version)

    def batch_client(self, key_id: str, endpoint: str) -> genai.Client:
        """A client bound to one pooled key (batch jobs and their files belong to the key's
        project); TransientError when the key is no longer in the pool."""
        return self.clients.for_files(self.keys.pooled(key_id), endpoint)
