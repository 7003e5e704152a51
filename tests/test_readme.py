"""The README's runnable blocks (fenced ```sh readme-test) work as written, from a copy
of the checkout — what a newcomer pastes is what this test runs."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```sh readme-test\n(.*?)^```", re.M | re.S)


def readme_blocks() -> list[str]:
    return BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_marks_its_runnable_blocks() -> None:
    blocks = readme_blocks()
    assert blocks and all(block.strip() for block in blocks)


def copy_of_checkout(target: Path) -> Path:
    """The tracked files (what a clone has) plus the installed .venv, linked."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(ROOT / ".venv")
    return target


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_a_readme_block_runs_as_written(tmp_path: Path, index: int) -> None:
    checkout = copy_of_checkout(tmp_path / "checkout")
    script = "set -euo pipefail\n" + readme_blocks()[index]
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DATABASE_URL", "REDIS_URL", "TAGGER", "STORAGE"))}
    # the linked .venv has this checkout installed editable: the copy's own code first
    env["PYTHONPATH"] = str(checkout)
    process = subprocess.Popen(["bash", "-c", script], cwd=checkout, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        stop_group(process.pid)
        output, _ = process.communicate()
        pytest.fail(f"README block {index} did not finish in 240 s:\n{output[-3000:]}")
    finally:
        stop_group(process.pid)  # whatever the block left running
    assert process.returncode == 0, output[-3000:]
    assert '"status": "completed"' in output or '"status":"completed"' in output, output[-3000:]


def stop_group(pgid: int) -> None:
    """SIGTERM first (the stack then stops the children it started in sessions of their
    own), SIGKILL for what is left after 15 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            os.killpg(pgid, 0)
            time.sleep(0.2)
        os.killpg(pgid, signal.SIGKILL)
