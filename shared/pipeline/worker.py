"""What the pipeline works with: its clients (`Worker`) and its settings (`WorkerConfig`).

The runner, the reaper, the callbacks and the batch collector take a `Worker` instead of
the application's whole context, so the pipeline never reads `Settings` and never imports
the composition root; the application context assembles one (`Services.worker`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from shared.accounts.pool import AccountPool
from shared.pipeline.stages import StageTools
from shared.queue.base import TaskQueue
from shared.tasks.batches import BatchStore
from shared.tasks.followups import Followups
from shared.tasks.queries import TaskQueries
from shared.tasks.store import TaskStore

if TYPE_CHECKING:
    from shared.search.index import TagIndex
    from shared.teams.fair import FairGate


@dataclass(frozen=True)
class WorkerConfig:
    """The settings the pipeline reads, and no others."""

    max_attempts: int
    """Claims a task may have (MAX_ATTEMPTS); then it fails."""
    lease_s: int
    """A claim's lease and the Redis lock's lifetime (TASK_TIMEOUT_S), renewed by the heartbeat."""
    max_quota_wait_s: float
    """How long a task may wait for a key or a model, from its first wait (MAX_QUOTA_WAIT_S)."""
    reconcile_grace_s: float
    """How overdue a pending task's delivery may be before the reaper enqueues it again."""
    batch_max_wait_s: float
    """How long a task waits for a Gemini batch answer before it is tagged interactively."""
    batch_max_tasks: int
    """Tasks in one Gemini batch job."""
    callback_secret: str = field(repr=False)
    """HMAC key of the callbacks' `X-Signature` ("" = unsigned); kept out of any repr."""
    callback_timeout_s: float
    """Time limit of one callback request."""
    callback_max_attempts: int
    """Tries of one callback (5xx and timeouts are retried)."""
    rollup_recount_s: float
    """Seconds between the sweeps' exact recounts of the stats' rollups (ROLLUP_RECOUNT_S)."""


@dataclass(frozen=True)
class Worker:
    """Exactly what the pipeline uses: the task records, the queue, the key pool, the
    stages' tools (their tagger, storage and URL policy serve the batch collector and the
    callbacks too) and the config. Built per use by the application context (cheap, no I/O),
    so a backend swapped on the context is the one the next delivery sees."""

    store: TaskStore
    queries: TaskQueries
    followups: Followups
    batches: BatchStore
    redis: redis.Redis
    queue: TaskQueue
    pool: AccountPool
    tools: StageTools
    config: WorkerConfig
    index: TagIndex | None = None
    fair: FairGate | None = None
    """The fair gate between teams (FAIR_SHARE on Cloud Tasks); None: first come, first
    served (the local queue orders teams itself)."""
