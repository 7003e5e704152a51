"""The README's runnable blocks (fenced ```sh readme-test) work as written, from a copy
of the checkout — what a newcomer pastes is what this test runs. The README stays a few
screens long, its sample result uses the real field names, and every relative link in it
and in docs/ reaches a file and heading that exist (issue 39)."""

from __future__ import annotations

import contextlib
import json
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
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
# [text](target): the text may hold `code` and brackets of its own, never a line break
LINK = re.compile(r"\[(?:[^\]\n]|\][^(\n])*?\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.M)


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


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def github_anchors(markdown: str) -> set[str]:
    """The ids GitHub gives a file's headings: lower case, punctuation other than `-` and
    `_` dropped, spaces as `-`, a repeated one suffixed -1, -2 …; code blocks hold none."""
    anchors: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", markdown)):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        anchor, count = slug, 0
        while anchor in anchors:
            count += 1
            anchor = f"{slug}-{count}"
        anchors.add(anchor)
    return anchors


def relative_links(document: Path) -> list[str]:
    text = FENCE.sub("", document.read_text(encoding="utf-8"))
    return [target for target in LINK.findall(text)
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]  # http:, https:, mailto: …


def broken(document: Path, target: str) -> str | None:
    """Why a relative link from `document` leads nowhere, or None when it arrives."""
    path_part, _, anchor = target.partition("#")
    destination = (document.parent / path_part).resolve() if path_part else document
    if not destination.exists():
        return f"{target}: no file {path_part}"
    if anchor and (destination.suffix != ".md"
                   or anchor not in github_anchors(destination.read_text(encoding="utf-8"))):
        return f"{target}: no heading #{anchor} in {destination.name}"
    return None


def test_the_anchor_rule_is_github_s() -> None:
    assert github_anchors("## Operating it: stats, dashboard, logs\n## Set-up (two commands)\n"
                          "### `GET /docs` page\n## Notes\n## Notes\n```sh\n# not one\n```") \
        == {"operating-it-stats-dashboard-logs", "set-up-two-commands", "get-docs-page",
            "notes", "notes-1"}


def test_a_broken_link_is_caught(tmp_path: Path) -> None:
    """The check can fail: a missing file and a missing heading are both named."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n[a](gone.md) [b](page.md#nowhere) [c](#title)\n")
    assert broken(page, "page.md#title") is None and broken(page, "#title") is None
    assert "no file" in (broken(page, "gone.md") or "")
    assert "no heading #nowhere" in (broken(page, "page.md#nowhere") or "")


def test_every_relative_link_in_the_readme_and_docs_arrives() -> None:
    problems = [f"{document.relative_to(ROOT)}: {why}" for document in documents()
                for target in relative_links(document)
                if (why := broken(document, target))]
    assert problems == []


def test_the_readme_fits_on_a_few_screens_and_links_every_doc() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    linked = {target.partition("#")[0] for target in relative_links(ROOT / "README.md")}
    assert {f"docs/{doc.name}" for doc in (ROOT / "docs").glob("*.md")} <= linked
    assert "[`/docs`](http://localhost:8080/docs)" in readme  # the API docs page (GET /docs)


def test_the_two_set_up_commands_come_first() -> None:
    """CI and newcomers rely on them: the first two code blocks, exactly these."""
    blocks = re.findall(r"^```(\S*)\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)
    commands = [body.strip() for lang, body in blocks if lang == "sh"][:2]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]


def test_the_sample_result_uses_the_real_field_names() -> None:
    """The README's trimmed sample may leave fields out but never invents one."""
    from shared.tagging.result import KeyMoment, Tag, TagResult, Technical
    from shared.tasks.models import Task

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    task = json.loads(re.search(r"^```json\n(.*?)^```", readme, re.M | re.S).group(1))
    assert task["status"] == "completed" and set(task) <= set(Task.model_fields)
    result = task["result"]
    assert set(result) <= set(TagResult.model_fields)
    assert set(result["technical"]) <= set(Technical.model_fields)
    assert all(set(moment) <= set(KeyMoment.model_fields) for moment in result["key_moments"])
    tags = [tag for fields in result["dimensions"].values() for field in fields.values()
            for tag in field]
    assert tags and all(Tag.model_validate(tag).tag == tag["tag"] for tag in tags)
