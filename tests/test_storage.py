"""Storage (local folder and GCS via gcp-storage-emulator) and the cache cleanup."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from scripts.stack import ROOT
from shared.app.cleanup import clean_videos, day_of, default_range, human_bytes

KEYS = [
    "videos/2026/11/01/aaa/source.mp4",
    "videos/2026/11/01/aaa/frames/001.jpg",
    "videos/2026/11/02/bbb/source.mp4",
    "videos/2026/11/20/ccc/source.mp4",
    "other/keep.txt",
]


def fill(storage, tmp_path: Path) -> None:
    for index, key in enumerate(KEYS):
        path = tmp_path / f"f{index}"
        path.write_bytes(b"x" * (100 * (index + 1)))
        storage.put_file(key, path, "application/octet-stream")


def test_put_get_exists_list_delete(storage, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"video bytes")
    uri = storage.put_file("videos/2026/11/01/t1/source.mp4", source, "video/mp4")
    key = storage.key_of(uri)
    assert key == "videos/2026/11/01/t1/source.mp4"
    assert storage.key_of("s3://elsewhere/x") is None
    assert storage.exists(key) and not storage.exists("videos/none")
    storage.get_file(key, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == b"video bytes"
    assert [(o.key, o.size_bytes) for o in storage.list("videos/")] == [(key, 11)]
    storage.delete(key)
    storage.delete(key)  # missing is fine
    assert list(storage.list("videos/")) == []
    with pytest.raises(FileNotFoundError):
        storage.get_file(key, tmp_path / "gone.bin")
    storage.ping()


def test_cleanup_range_is_inclusive_and_dry_run_keeps(storage, tmp_path: Path) -> None:
    fill(storage, tmp_path)
    dry = clean_videos(storage, date(2026, 11, 1), date(2026, 11, 2), dry_run=True)
    assert (dry.objects, dry.bytes_freed) == (3, 100 + 200 + 300)
    assert len(list(storage.list(""))) == 5
    done = clean_videos(storage, date(2026, 11, 1), date(2026, 11, 2))
    assert done.days == {"2026-11-01": 2, "2026-11-02": 1}
    assert sorted(o.key for o in storage.list("")) == sorted([KEYS[3], KEYS[4]])


def test_default_range_keeps_the_last_cache_days() -> None:
    start, end = default_range(date(2026, 11, 29), 7)
    assert end == date(2026, 11, 21) and start < date(2020, 1, 1)


def test_helpers() -> None:
    assert day_of("videos/2026/02/30/x/source.mp4") is None
    assert day_of("videos/2026/02/28/x/source.mp4") == date(2026, 2, 28)
    assert human_bytes(512) == "512 B" and human_bytes(3 * 1024**2) == "3.0 MB"
    with pytest.raises(ValueError):
        clean_videos(None, date(2026, 1, 2), date(2026, 1, 1))


def run_script(*args: str, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "scripts/clean_videos.py", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True)


@pytest.mark.parametrize(("args", "message"), [
    (["--start", "2026-11-05", "--end", "2026-11-01"], "is after --end"),
    (["--start", "2026-13-01", "--end", "2026-11-01"], "is not a date"),
    (["--start", "yesterday", "--end", "2026-11-01"], "is not a date"),
    (["--start", "2026-11-01"], "go together"),
    (["--end", "2026-11-01"], "go together"),
    (["--days", "-1"], "0 or more"),
])
def test_script_refuses_bad_ranges(args, message, tmp_path: Path) -> None:
    run = run_script(*args, env_extra={"STORAGE_DIR": str(tmp_path)})
    assert run.returncode == 2 and message in run.stderr


def test_script_on_local_storage(tmp_path: Path) -> None:
    from shared.storage import LocalStorage

    storage = LocalStorage(tmp_path / "objects")
    fill(storage, tmp_path)
    env = {"STORAGE": "local", "STORAGE_DIR": str(tmp_path / "objects")}
    dry = run_script("--start", "2026-11-01", "--end", "2026-11-01", "--dry-run", env_extra=env)
    assert dry.returncode == 0 and "would delete 2 objects, 300 B" in dry.stdout
    real = run_script("--start", "2026-11-01", "--end", "2026-11-20", env_extra=env)
    assert "deleted 4 objects, 1000 B" in real.stdout
    assert [o.key for o in storage.list("")] == ["other/keep.txt"]
    assert not (tmp_path / "objects" / "videos").exists()  # empty folders removed too


def test_script_on_gcs(gcs_emulator, tmp_path: Path) -> None:
    from shared.storage import GcsStorage

    storage = GcsStorage("vtt-test")
    fill(storage, tmp_path)
    env = {"STORAGE": "gcs", "GCS_BUCKET": "vtt-test", "STORAGE_EMULATOR_HOST": gcs_emulator}
    run = run_script("--days", "3", env_extra=env)
    assert run.returncode == 0, run.stderr
    assert "deleted 4 objects" in run.stdout
    assert [o.key for o in storage.list("")] == ["other/keep.txt"]
    storage.delete("other/keep.txt")
