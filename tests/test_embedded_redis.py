"""The embedded Redis keeps what it is given: a stop saves, a SIGKILL loses at most the
last second of writes, an unreadable file is moved aside (the server starts and says what
was lost), and a snapshot-only folder (an older install) is converted without loss."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import pytest

from shared.redis_conn import (
    AOF_FILE,
    RDB_FILE,
    connect,
    embedded_running,
    restart_if_down,
    stop_embedded_server,
)


@pytest.fixture
def folder(tmp_path: Path):
    folder = tmp_path / "redis"
    yield folder
    stop_embedded_server(folder)


def _kill(folder: Path) -> None:
    os.kill(int((folder / "redis.pid").read_text()), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while embedded_running(folder) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_durable_settings_are_in_force(folder: Path) -> None:
    client = connect("", folder)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert client.config_get("save")["save"] != ""


def test_a_stop_saves_and_a_start_loads(folder: Path) -> None:
    client = connect("", folder)
    client.hset("google_accounts:k1", mapping={"status": "disabled", "minute_limit": 7})
    client.zadd("task_queue_delayed", {"t1": 123})
    assert stop_embedded_server(folder)
    assert not embedded_running(folder)
    assert (folder / RDB_FILE).exists() and (folder / AOF_FILE).exists()

    client = connect("", folder)
    assert client.hgetall("google_accounts:k1") == {"status": "disabled", "minute_limit": "7"}
    assert client.zscore("task_queue_delayed", "t1") == 123


def test_sigkill_loses_at_most_the_last_second(folder: Path) -> None:
    client = connect("", folder)
    written: list[tuple[float, str]] = []
    for n in range(150):
        client.set(f"w{n}", n)
        written.append((time.monotonic(), f"w{n}"))
        time.sleep(0.01)
    killed_at = time.monotonic()
    _kill(folder)

    assert restart_if_down(folder)
    client = connect("", folder)
    lost = [key for at, key in written if client.get(key) is None]
    older_lost = [key for at, key in written if key in lost and at < killed_at - 1.0]
    assert older_lost == [], f"writes older than a second were lost: {older_lost}"


def test_restart_if_down_leaves_a_running_server_alone(folder: Path) -> None:
    client = connect("", folder)
    pid = (folder / "redis.pid").read_text()
    assert not restart_if_down(folder)
    assert (folder / "redis.pid").read_text() == pid
    assert client.ping()


@pytest.mark.parametrize("bad", [[AOF_FILE], [AOF_FILE, RDB_FILE]])
def test_an_unreadable_file_is_moved_aside_and_the_server_starts(folder: Path, bad, caplog) -> None:
    client = connect("", folder)
    client.set("kept-in-snapshot", 1)
    stop_embedded_server(folder)
    for name in bad:
        (folder / name).write_bytes(b"*3\r\n$3\r\nSET\r\n\x00\x01 not a redis file" * 4)

    with caplog.at_level(logging.WARNING, logger="vision_to_tag.redis"):
        client = connect("", folder)
    assert client.ping()
    message = caplog.text
    assert "could not read" in message and "moved aside" in message
    assert "reconciler re-queues" in message
    for name in bad:
        aside = [path.name for path in folder.iterdir()
                 if path.name.startswith(f"{name}.unreadable-")]
        assert len(aside) == 1, aside
        assert aside[0] in message
    if RDB_FILE in bad:  # nothing readable left: empty, and said so
        assert "started from nothing" in message
        assert client.dbsize() == 0
    else:  # the snapshot was readable: what it holds is back
        assert "started from the last snapshot" in message
        assert client.get("kept-in-snapshot") == "1"


def test_a_missing_snapshot_is_a_fresh_start(folder: Path) -> None:
    connect("", folder).set("x", 1)
    stop_embedded_server(folder)
    (folder / RDB_FILE).unlink()
    client = connect("", folder)  # the append-only file alone holds everything
    assert client.get("x") == "1"


def test_a_snapshot_only_folder_is_converted_without_loss(folder: Path) -> None:
    """An install from before the append-only file: its snapshot is loaded, then written
    to a first append-only file (starting with appendonly on would ignore the snapshot)."""
    connect("", folder).set("from-the-snapshot", 1)
    stop_embedded_server(folder)
    (folder / AOF_FILE).unlink()
    client = connect("", folder)
    assert client.get("from-the-snapshot") == "1"
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    stop_embedded_server(folder)
    (folder / RDB_FILE).unlink()  # the append-only file now holds it on its own
    assert connect("", folder).get("from-the-snapshot") == "1"
