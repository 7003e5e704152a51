"""The demo's headline: what a first run shows instead of the whole task."""

from __future__ import annotations

from scripts.demo import TOP_TAGS, headline

TAGS = [f"tag{n}" for n in range(TOP_TAGS + 3)]
COMPLETED = {"task_id": "t-1", "status": "completed", "message": None, "error_code": None,
             "created_at": "2026-12-07T05:41:10.500000Z",
             "processed_end": "2026-12-07T05:41:15.000000Z",
             "timings": {"downloading": 23, "tagging": 3189},
             "result": {"tags": TAGS, "summary": "6秒竖屏视频", "warnings": [], "safety": None}}


def test_a_completed_task_is_status_time_top_tags_and_summary() -> None:
    lines = headline(COMPLETED, waited_s=9.9).splitlines()
    assert lines == [
        "task t-1: completed in 4.5 s (downloading 0.0 s, tagging 3.2 s)",
        f"top tags: {', '.join(TAGS[:TOP_TAGS])} (+3 more)",
        "summary: 6秒竖屏视频"]
    assert "null" not in "\n".join(lines) and "None" not in "\n".join(lines)


def test_a_failed_task_says_why_and_an_unfinished_one_says_so() -> None:
    failed = {**COMPLETED, "status": "failed", "error_code": "video_unreadable",
              "message": "truncated file", "result": None, "processed_end": None}
    assert headline(failed, waited_s=2.04).splitlines() == [
        "task t-1: failed in 2.0 s (downloading 0.0 s, tagging 3.2 s)",
        "error: video_unreadable: truncated file"]
    pending = {**COMPLETED, "status": "pending"}
    assert headline(pending, waited_s=120.2) == "task t-1: still pending after 120 s"
