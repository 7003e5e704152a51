"""The application's context: every client a use case may need, and the settings.

`shared/services.py` (the composition root) builds one per process; the use cases in
`shared/app/` take it. The pipeline never sees it: it gets a `Worker`, assembled here
from the context's current fields (`Services.worker`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from shared.accounts.pool import AccountPool
from shared.config import Settings
from shared.pipeline.stages import StageTools
from shared.pipeline.worker import Worker, WorkerConfig
from shared.queue.base import TaskQueue
from shared.storage import InputBuckets, Storage
from shared.tagging.base import Tagger
from shared.tasks.batches import BatchStore
from shared.tasks.followups import Followups
from shared.tasks.queries import TaskQueries
from shared.tasks.store import TaskStore
from shared.teams.fair import FairGate
from shared.video.fetch import FetchLimits
from shared.video.safety import UrlPolicy

if TYPE_CHECKING:
    from shared.search.index import TagIndex
    from shared.tasks.fingerprints import FingerprintStore


@dataclass
class Services:
    settings: Settings
    store: TaskStore
    queries: TaskQueries
    followups: Followups
    batches: BatchStore
    redis: redis.Redis
    queue: TaskQueue
    storage: Storage
    tagger: Tagger
    url_policy: UrlPolicy
    pool: AccountPool
    index: TagIndex | None = None
    inputs: InputBuckets = field(default_factory=lambda: InputBuckets(()))
    """The buckets a task's `gs://` URL may name (INPUT_BUCKETS)."""

    @property
    def fingerprints(self) -> FingerprintStore:
        """The videos' fingerprints and their index (issue 40), on the task database and
        Redis (built on each access: no I/O; numpy imported on first use)."""
        from shared.tasks.fingerprints import FingerprintStore

        return FingerprintStore(self.store.engine, self.redis)

    @property
    def worker(self) -> Worker:
        """The pipeline's view of this context, assembled on each access from the fields
        and settings as they are now (a few small objects, no I/O). Tests swap a backend
        (`services.tagger = ...`) or change a setting after building; a worker kept in a
        field would go on using the old one, so none is kept."""
        return Worker(
            store=self.store, queries=self.queries, followups=self.followups,
            batches=self.batches, redis=self.redis, queue=self.queue, pool=self.pool,
            index=self.index, tools=self._stage_tools(), config=worker_config(self.settings),
            fair=(FairGate(self.redis, self.settings.pool.GEMINI_RATE_WINDOW_S)
                  if self._fair_gate() else None),
        )

    def _fair_gate(self) -> bool:
        """Teams share the key pool in the worker only on Cloud Tasks (the local queue
        orders them itself) and only when tagging uses the pool."""
        queue = self.settings.queue
        return queue.FAIR_SHARE and queue.QUEUE == "cloudtasks" and (
            self.settings.tagging.TAGGER == "gemini")

    def _stage_tools(self) -> StageTools:
        """What the pipeline's stages may use."""
        intake, reuse = self.settings.intake, self.settings.reuse
        return StageTools(
            tagger=self.tagger, storage=self.storage, url_policy=self.url_policy,
            fetch_limits=FetchLimits(
                max_bytes=intake.max_video_bytes,
                connect_timeout_s=intake.DOWNLOAD_CONNECT_TIMEOUT_S,
                read_timeout_s=intake.DOWNLOAD_READ_TIMEOUT_S,
                total_timeout_s=intake.DOWNLOAD_TOTAL_TIMEOUT_S,
            ),
            max_video_seconds=intake.MAX_VIDEO_SECONDS,
            record_source=self.store.record_source,
            record_windows=self.store.record_windows,
            find_result=self.queries.find_result if reuse.RESULT_CACHE else None,
            share_results=reuse.SHARE_RESULT_CACHE,
            inputs=self.inputs,
            fingerprints=self.fingerprints if reuse.RESULT_CACHE else None,
            default_reuse=reuse.REUSE,
        )


def worker_config(settings: Settings) -> WorkerConfig:
    """The settings the pipeline reads (of the queue, Batch mode, callbacks and the rollups'
    recount), by the pipeline's names."""
    queue, tagging, callbacks = settings.queue, settings.tagging, settings.callbacks
    return WorkerConfig(
        max_attempts=queue.MAX_ATTEMPTS,
        lease_s=queue.TASK_TIMEOUT_S,
        max_quota_wait_s=queue.MAX_QUOTA_WAIT_S,
        reconcile_grace_s=queue.RECONCILE_GRACE_S,
        batch_max_wait_s=tagging.BATCH_MAX_WAIT_S,
        batch_max_tasks=tagging.BATCH_MAX_TASKS,
        callback_secret=callbacks.CALLBACK_SECRET,
        callback_timeout_s=callbacks.CALLBACK_TIMEOUT_S,
        callback_max_attempts=callbacks.CALLBACK_MAX_ATTEMPTS,
        rollup_recount_s=settings.housekeeping.ROLLUP_RECOUNT_S,
    )
