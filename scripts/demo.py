"""Tag a generated sample video end to end on the embedded defaults and print the result.

Starts the local stack (api + worker under functions-framework + consumer), serves a
sample video from 127.0.0.1, creates a task through the HTTP API, waits for it and prints
the task JSON. No cloud account, no API key: SQLite, embedded Redis, local folder and the
offline LocalTagger.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import sys
import threading
import time
from pathlib import Path

import requests

from scripts.sample_video import caption_filter, make_video
from scripts.stack import LocalStack

ROOT = Path(__file__).resolve().parent.parent


def serve_folder(folder: Path) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def main() -> int:
    os.environ.setdefault("ALLOW_PRIVATE_URLS", "true")  # the sample is served from 127.0.0.1
    from shared.config import VAR_DIR, get_settings
    from shared.redis_conn import embedded_running, stop_embedded_server
    from shared.services import get_services

    embedded = not get_settings().REDIS_URL
    started_redis = embedded and not embedded_running(VAR_DIR / "redis")
    get_services()  # migrate the database and start embedded Redis before the children
    try:
        return tag_sample()
    finally:
        if started_redis:  # leave the machine as we found it
            stop_embedded_server(VAR_DIR / "redis")


def tag_sample() -> int:
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
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            task = requests.get(f"{stack.api_url}/api/v1/task/{task_id}", headers=headers,
                                timeout=30).json()["data"]
            if task["status"] in ("completed", "failed"):
                break
            time.sleep(0.3)
        print(json.dumps(task, ensure_ascii=False, indent=2))
    server.shutdown()
    return 0 if task["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
