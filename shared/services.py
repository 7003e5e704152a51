"""Build the clients a process needs, once, from the settings.

Functions call `get_services()` on their first request (clients are reused across
requests of the same instance); tests build their own `Services` with other backends.
`Services` (the application's context, `shared/app/context.py`) hands the pipeline its
`Worker` (`Services.worker`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis
import sqlalchemy as sa

from shared.accounts.pool import AccountPool
from shared.app.context import Services
from shared.backoff import exponential_backoff
from shared.config import VAR_DIR, ConfigError, Settings, get_settings
from shared.errors import ServiceUnavailable
from shared.once import once
from shared.queue.base import TaskQueue
from shared.queue.redis_queue import RedisQueue
from shared.redis_conn import RedisLimits, redis_outage
from shared.redis_conn import connect as connect_redis
from shared.settings.queue import QueueSettings
from shared.settings.redis import RedisSettings
from shared.settings.search import SearchSettings
from shared.settings.storage import StorageSettings
from shared.settings.tagging import TaggingSettings
from shared.storage import GcsStorage, InputBuckets, LocalStorage, Storage
from shared.tagging import taxonomy
from shared.tagging.base import Tagger
from shared.tagging.gemini_config import GeminiConfig
from shared.tagging.local import LocalTagger
from shared.tasks.batches import BatchStore
from shared.tasks.db import connect as db_connect
from shared.tasks.db import create_db_engine, migrate
from shared.tasks.followups import Followups
from shared.tasks.queries import TaskQueries
from shared.tasks.store import TaskStore
from shared.video.safety import UrlPolicy

if TYPE_CHECKING:
    from shared.search.index import TagIndex


def build_services(settings: Settings, *, run_migrations: bool = True) -> Services:
    check_vocabulary(settings.tagging)
    engine = create_db_engine(settings.database)
    if run_migrations:
        # the usual limits find a hanging database first; then the migrations get their
        # own engine: an ALTER on a big table may take longer than DB_READ_TIMEOUT_S
        with db_connect(engine) as conn:
            conn.execute(sa.text("SELECT 1"))
        migrations = create_db_engine(settings.database,
                                      read_timeout_s=settings.DB_MIGRATION_TIMEOUT_S)
        try:
            migrate(migrations)
        finally:
            migrations.dispose()
    client = connect_redis(settings.REDIS_URL, VAR_DIR / "redis", redis_limits(settings.redis))
    pool = AccountPool(client, settings.QUOTA_TZ,
                       window_ms=int(settings.GEMINI_RATE_WINDOW_S * 1000),
                       model=settings.GEMINI_MODEL)
    return Services(
        settings=settings,
        store=TaskStore(engine),
        queries=TaskQueries(engine),
        followups=Followups(engine),
        batches=BatchStore(engine),
        redis=client,
        queue=build_queue(settings.queue, client, settings.pool.GEMINI_RATE_WINDOW_S),
        storage=build_storage(settings.storage),
        inputs=InputBuckets(settings.INPUT_BUCKETS, timeout_s=settings.GCS_TIMEOUT_S,
                            retry_deadline_s=settings.GCS_RETRY_DEADLINE_S),
        tagger=build_tagger(settings.tagging, pool),
        pool=pool,
        index=build_index(settings.search, tuple(settings.ENVS), pool,
                          settings.tagging.gemini_endpoints[0]),
        url_policy=UrlPolicy(
            allow_private=settings.ALLOW_PRIVATE_URLS,
            allowlist=frozenset(settings.PRIVATE_URL_ALLOWLIST),
        ),
    )


def check_vocabulary(settings: TaggingSettings) -> None:
    """TAXONOMY_FILE, checked at start-up (here and in main.py): a bad vocabulary stops the
    process naming the entry, like any other bad setting. Parsed once per process: the
    tagger takes the same cached copy."""
    try:
        taxonomy.cached(settings.TAXONOMY_FILE)
    except taxonomy.TaxonomyError as error:
        raise ConfigError(f"invalid configuration: TAXONOMY_FILE="
                          f"{settings.TAXONOMY_FILE!r}: Value error, {error}") from None


def redis_limits(settings: RedisSettings) -> RedisLimits:
    return RedisLimits(connect_s=settings.REDIS_CONNECT_TIMEOUT_S,
                       socket_s=settings.REDIS_SOCKET_TIMEOUT_S,
                       health_check_s=settings.REDIS_HEALTH_CHECK_INTERVAL_S)


def build_queue(settings: QueueSettings, client: redis.Redis,
                window_s: float = 60.0) -> TaskQueue:
    """`window_s`: the key pool's rate window (GEMINI_RATE_WINDOW_S), over which the local
    queue counts a team's recent use for the fair share."""
    if settings.QUEUE == "cloudtasks":
        from shared.queue.cloudtasks import CloudTasksQueue, build_tasks_client

        return CloudTasksQueue(
            build_tasks_client(settings.CLOUD_TASKS_EMULATOR_HOST), settings.CLOUD_TASKS_QUEUE,
            settings.WORKER_URL, settings.TASKS_SERVICE_ACCOUNT, settings.DISPATCH_DEADLINE_S,
            timeout_s=settings.CLOUD_TASKS_TIMEOUT_S,
        )
    return RedisQueue(client, fair=settings.FAIR_SHARE, window_s=window_s)


def build_index(settings: SearchSettings, envs: tuple[str, ...], pool: AccountPool,
                gemini_endpoint: str = "") -> TagIndex | None:
    """The search index (one per env), or None when ES_URL is not set (search answers
    503); with SEMANTIC_SEARCH, its embedder takes keys from the same pool and calls
    Gemini's first endpoint."""
    if not settings.ES_URL:
        return None
    from shared.search.client import build_search_client
    from shared.search.embeddings import EmbeddingConfig, GeminiEmbedder
    from shared.search.index import TagIndex

    embedder = GeminiEmbedder(pool, EmbeddingConfig(
        model=settings.EMBEDDING_MODEL, endpoint=gemini_endpoint,
        timeout_s=settings.EMBEDDING_TIMEOUT_S, batch=settings.EMBEDDING_BATCH,
        price_per_million=settings.EMBEDDING_PRICE_PER_M)) if settings.SEMANTIC_SEARCH else None
    return TagIndex(build_search_client(settings.ES_URL, settings.ES_COMPAT_HEADERS,
                                        timeout_s=settings.ES_TIMEOUT_S),
                    settings.ES_INDEX_PREFIX, envs, embedder)


def build_storage(settings: StorageSettings) -> Storage:
    if settings.STORAGE == "gcs":
        return GcsStorage(settings.GCS_BUCKET, timeout_s=settings.GCS_TIMEOUT_S,
                          retry_deadline_s=settings.GCS_RETRY_DEADLINE_S)
    return LocalStorage(settings.STORAGE_DIR)


def build_tagger(settings: TaggingSettings, pool: AccountPool) -> Tagger:
    if settings.TAGGER == "gemini":
        from shared.tagging.gemini import GeminiTagger  # imports google-genai only when used

        return GeminiTagger(pool, gemini_config(settings))
    return LocalTagger()


def gemini_config(settings: TaggingSettings) -> GeminiConfig:
    """The settings the Gemini tagger reads, and only those."""
    return GeminiConfig(
        model=settings.GEMINI_MODEL,
        fallback_models=tuple(settings.GEMINI_FALLBACK_MODELS),
        endpoints=tuple(settings.gemini_endpoints),
        timeout_s=settings.GEMINI_TIMEOUT_S,
        timeout_per_minute_s=settings.GEMINI_TIMEOUT_PER_MINUTE_S,
        timeout_per_mb_s=settings.GEMINI_TIMEOUT_PER_MB_S,
        thinking_budget=settings.GEMINI_THINKING_BUDGET,
        media_resolution=settings.GEMINI_MEDIA_RESOLUTION,
        low_res_above_s=settings.GEMINI_LOW_RES_ABOVE_S,
        prices=settings.GEMINI_PRICES,
        taxonomy_file=settings.TAXONOMY_FILE,
        temperature=settings.GEMINI_TEMPERATURE,
        max_output_tokens=settings.GEMINI_MAX_OUTPUT_TOKENS,
        window_s=settings.GEMINI_WINDOW_S,
        deadline_s=settings.GEMINI_DEADLINE_S,
        file_timeout_s=settings.GEMINI_FILE_TIMEOUT_S,
        tag_input=settings.TAG_INPUT,
        inline_max_mb=settings.INLINE_MAX_MB,
    )


@once
def get_services() -> Services:
    """The process-wide services, built on first use — once, even when a cold instance's
    first requests arrive together (a second build would migrate again and make a second
    set of clients, connection pools and Gemini clients)."""
    return build_services(get_settings())


STARTUP_WAIT_S = (0.5, 10.0)
"""A long-running process started while the database or Redis is down asks again after
the first pause, doubled each time up to the second."""


def wait_for_services(stopping: threading.Event, say: Callable[[str], None]) -> Services | None:
    """The process-wide services once the database and Redis answer; None when `stopping`
    is set first. A long-running process (the local stack, the consumer) started while a
    dependency is down waits for it, saying so once per dependency and once when it is
    back, instead of exiting with a traceback."""
    waiting: set[str] = set()
    step = 0
    while not stopping.is_set():
        try:
            services = get_services()
            with redis_outage():
                services.redis.ping()
        except ServiceUnavailable as error:
            if error.service not in waiting:
                say(f"{error}; waiting for it, starting when it answers")
                waiting.add(error.service)
            stopping.wait(exponential_backoff(step, *STARTUP_WAIT_S))
            step += 1
            continue
        if waiting:
            say(f"{' and '.join(sorted(waiting))} answering again; starting")
        return services
    return None
