"""A client generated from the served document by a standard generator drives the API:
create → poll → result → list → batch, and each documented error parses into the error
model (tests/client_driver.py). The generator comes from the package registry into a
venv of its own, as a user would install it."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

from scripts.stack import ROOT, LocalStack, free_port
from tests.helpers import RedisServer

pytestmark = pytest.mark.slow

GENERATOR = "openapi-python-client==0.29.0"
"""The generator the issue's reader used; its own dependencies bring httpx and attrs, which
the generated client needs."""


@pytest.fixture(scope="module")
def generator_venv(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("generator") / "venv"
    venv.create(folder, with_pip=True)
    subprocess.run([folder / "bin" / "pip", "install", "-q", "--disable-pip-version-check",
                    GENERATOR], check=True, timeout=600)
    return folder


def test_a_generated_client_gets_typed_models_for_every_reply(
        generator_venv: Path, mysql_db_url: str, media_server, tmp_path) -> None:
    redis = RedisServer(free_port()).start()
    stack = LocalStack(env={
        "DATABASE_URL": mysql_db_url, "REDIS_URL": redis.url,
        "STORAGE_DIR": str(tmp_path / "storage"), "ALLOW_PRIVATE_URLS": "true",
        "API_TOKENS": "client-token", "WORKER_TOKEN": "", "AUTH_FAILURE_LIMIT": "3",
        "PYTHONPATH": str(ROOT)},
        log_dir=tmp_path / "logs")
    stack.start()
    try:
        subprocess.run(
            [generator_venv / "bin" / "openapi-python-client", "generate", "--url",
             f"{stack.api_url}/api/v1/openapi.json", "--meta", "setup",
             "--output-path", tmp_path / "client"],
            check=True, timeout=120, capture_output=True, cwd=tmp_path)
        subprocess.run([generator_venv / "bin" / "pip", "install", "-q", "--no-deps",
                        "--disable-pip-version-check", tmp_path / "client"],
                       check=True, timeout=120)
        driver = [generator_venv / "bin" / "python", ROOT / "tests" / "client_driver.py"]
        media = media_server.url("files/clip.mp4")
        ok = subprocess.run([*driver, "ok", stack.api_url, "client-token", media],
                            capture_output=True, text=True, timeout=180)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        redis.kill()  # a backing service down: 503 + Retry-After, in the error model
        down = subprocess.run([*driver, "down", stack.api_url, "client-token", media],
                              capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
    finally:
        stack.stop()
        redis.kill()
