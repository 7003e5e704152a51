"""Tag a generated sample video end to end on the embedded defaults and print the result.

Starts the local stack (api + worker under functions-framework + consumer), serves a
sample video from 127.0.0.1, creates a task through the HTTP API, waits for it and prints
a headline: status, time taken, top tags, summary. `--json` prints the whole task as the
API answers it (stdout; the headline goes to stderr then). No cloud account, no API key:
SQLite, embedded Redis, local folder and the offline LocalTagger.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from scripts.sample_video import caption_filter, make_video
from scripts.stack import LocalStack

ROOT = Path(__file__).resolve().parent.parent
TOP_TAGS = 10
WAIT_S = 120


def serve_folder(folder: Path) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vtt-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true",
                        help="print the whole task as the API answers it (on stdout; the "
                             "headline goes to stderr)")
    args = parser.parse_args(argv)
    os.environ.setdefault("ALLOW_PRIVATE_URLS", "true")  # the sample is served from 127.0.0.1
    from shared.config import VAR_DIR, get_settings
    from shared.redis_conn import embedded_running, stop_embedded_server
    from shared.services import get_services

    embedded = not get_settings().REDIS_URL
    started_redis = embedded and not embedded_running(VAR_DIR / "redis")
    get_services()  # migrate the database and start embedded Redis before the children
    try:
        return tag_sample(as_json=args.json)
    finally:
        if started_redis:  # leave the machine as we found it
            stop_embedded_server(VAR_DIR / "redis")


def tag_sample(as_json: bool = False) -> int:
    sample_dir = ROOT / "var" / "sample"
    video = sample_dir / "sample-captioned.mp4"
    if not video.exists():  # with a caption when a CJK font is installed: OCR shows it
        sample_dir.mkdir(parents=True, exist_ok=True)
        make_video(video, seconds=6, size="720x1280",
                   extra=caption_filter("限时优惠 ¥99 包邮", video))
    server = serve_folder(sample_dir)
    video_url = f"http://127.0.0.1:{server.server_address[1]}/{video.name}"
    token = (os.environ.get("API_TOKENS") or "").split(",")[0].strip()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with LocalStack() as stack:
        print(f"local stack up: api {stack.api_url}, worker {stack.worker_url}", file=sys.stderr)
        created = requests.post(
            f"{stack.api_url}/api/v1/task/create", headers=headers, timeout=30,
            json={"url": video_url, "platform": "rpa", "dimensions": "all"},
        ).json()
        if created["code"] != 200:
            print(json.dumps(created, ensure_ascii=False, indent=2))
            return 1
        task_id = created["task_id"]
        print(f"task {task_id} created for {video_url}", file=sys.stderr)
        started = time.monotonic()
        while time.monotonic() < started + WAIT_S:
            task = requests.get(f"{stack.api_url}/api/v1/task/{task_id}", headers=headers,
                                timeout=30).json()["data"]
            if task["status"] in ("completed", "failed"):
                break
            time.sleep(0.3)
        waited_s = time.monotonic() - started
    server.shutdown()
    if as_json:
        print(headline(task, waited_s), file=sys.stderr)
        print(json.dumps(task, ensure_ascii=False, indent=2))
    else:
        print(headline(task, waited_s))
        print("(add --json for the whole task as the API answers it)")
    return 0 if task["status"] == "completed" else 1


def headline(task: dict[str, Any], waited_s: float) -> str:
    """What a first run needs to see on one screen: did it work, how long, what was found."""
    status = task["status"]
    if status not in ("completed", "failed"):
        return f"task {task['task_id']}: still {status} after {WAIT_S} s"
    stages = ", ".join(f"{stage} {ms / 1000:.1f} s"
                       for stage, ms in (task.get("timings") or {}).items())
    lines = [f"task {task['task_id']}: {status} in {taken_s(task, waited_s):.1f} s"
             + (f" ({stages})" if stages else "")]
    if status == "failed":
        return "\n".join([*lines, f"error: {task.get('error_code')}: {task.get('message')}"])
    result = task.get("result") or {}
    tags = list(result.get("tags") or [])
    more = f" (+{len(tags) - TOP_TAGS} more)" if len(tags) > TOP_TAGS else ""
    return "\n".join([*lines, f"top tags: {', '.join(tags[:TOP_TAGS]) or '-'}{more}",
                      f"summary: {result.get('summary') or '-'}"])


def taken_s(task: dict[str, Any], waited_s: float) -> float:
    """Created to finished, by the service's own clock when it says both."""
    try:
        return (datetime.fromisoformat(task["processed_end"])
                - datetime.fromisoformat(task["created_at"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return waited_s


if __name__ == "__main__":
    sys.exit(main())
