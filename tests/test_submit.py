"""vtt-submit against the real `api` function (served on 127.0.0.1, MariaDB + Redis)."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import functions_framework
import pytest
from werkzeug.serving import make_server

from scripts.stack import free_port
from scripts.submit import Api, Pace, main, read_lines
from shared.services import get_services
from tests.helpers import queued_ids
from tests.test_batches import complete, fail


@pytest.fixture
def api_url(app_env):
    app_env(API_TOKENS="submit-token")
    port = free_port()
    httpd = make_server("127.0.0.1", port, functions_framework.create_app("api", "main.py"),
                        threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    httpd.shutdown()


def submit(api_url: str, *args: str) -> int:
    return main([*args, "--api", api_url, "--token", "submit-token", "--poll-s", "0.05"])


def task_count() -> int:
    return sum(get_services().queries.count_by_status().values())


CSV_TEXT = ("\ufeffurl,uid,dimensions\r\n"
            "https://cdn.example.com/1.mp4,7,audio\r\n"
            "\r\n"
            "https://cdn.example.com/2.mp4,,\r\n"
            "https://cdn.example.com/3.mp4,9,vision\r\n")


def test_csv_is_created_once_then_waited_for_and_written(api_url, tmp_path: Path,
                                                         redis_client, capsys) -> None:
    source = tmp_path / "videos.csv"
    source.write_bytes(CSV_TEXT.encode())
    assert submit(api_url, str(source), "--no-wait", "--batch-size", "2") == 0
    assert task_count() == 3 and len(queued_ids(redis_client)) == 3
    assert submit(api_url, str(source), "--no-wait", "--batch-size", "2") == 0  # again
    assert submit(api_url, str(source), "--resume", "--no-wait", "--batch-size", "2") == 0
    assert task_count() == 3
    services = get_services()
    tasks, _ = services.queries.list(limit=10)
    by_url = {task.url: task for task in tasks}
    assert by_url["https://cdn.example.com/1.mp4"].uid == "7"
    assert by_url["https://cdn.example.com/1.mp4"].dimensions == ["audio"]
    complete(services, by_url["https://cdn.example.com/1.mp4"].task_id)
    complete(services, by_url["https://cdn.example.com/2.mp4"].task_id)
    fail(services, by_url["https://cdn.example.com/3.mp4"].task_id)
    out = tmp_path / "out.csv"
    assert submit(api_url, str(source), "--batch-size", "2", "--out", str(out)) == 3
    assert task_count() == 3
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert [(row["line"], row["status"]) for row in rows] == [
        ("2", "completed"), ("4", "completed"), ("5", "failed")]
    assert rows[0]["tags"].startswith("女性") and rows[2]["error_code"] == "video_unreadable"
    assert "'=HYPERLINK(1)" in rows[0]["tags_content"]
    assert "completed=2" in capsys.readouterr().err


def test_everything_completed_is_exit_0_with_jsonl(api_url, tmp_path: Path) -> None:
    source = tmp_path / "urls.txt"
    source.write_bytes(b"\xef\xbb\xbfhttps://cdn.example.com/a.mp4\r\n\r\n   \r\n"
                       b"# a comment\r\nhttps://cdn.example.com/b.mp4")
    assert submit(api_url, str(source), "--no-wait") == 0
    services = get_services()
    for task in services.queries.list(limit=10)[0]:
        complete(services, task.task_id)
    assert submit(api_url, str(source)) == 0
    rows = [json.loads(line) for line in
            (tmp_path / "urls.results.jsonl").read_text().splitlines()]
    assert [(row["line"], row["status"]) for row in rows] == [(1, "completed"),
                                                             (5, "completed")]
    assert rows[0]["url"] == "https://cdn.example.com/a.mp4" and task_count() == 2


def test_refused_lines_are_exit_3_listed_and_counted_apart(api_url, tmp_path: Path,
                                                          capsys) -> None:
    source = tmp_path / "items.jsonl"
    source.write_text('{"url": "https://cdn.example.com/a.mp4"}\n\n'
                      '{"url": "https://cdn.example.com/b.mp4", "platform": "nope"}\n')
    assert submit(api_url, str(source), "--no-wait") == 3
    assert "1 of 2 created (1 refused)" in capsys.readouterr().err
    services = get_services()
    complete(services, services.queries.list(limit=10)[0][0].task_id)
    out = tmp_path / "r.jsonl"
    assert submit(api_url, str(source), "--out", str(out)) == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[1]["line"] == 3 and rows[1]["status"] == "rejected"
    assert rows[1]["error_code"] == "invalid_item"
    assert rows[1]["message"].startswith("platform: unknown platform 'nope'")
    assert rows[0]["error_code"] is None and rows[0]["message"] is None
    assert list(rows[0])[4:6] == ["error_code", "message"]
    err = capsys.readouterr().err
    assert "failed=0" in err and "refused=1" in err
    assert "1 of 2 completed, 0 failed, 1 refused" in err
    as_csv = tmp_path / "r.csv"
    assert submit(api_url, str(source), "--out", str(as_csv)) == 3
    table = list(csv.DictReader(io.StringIO(as_csv.read_text(encoding="utf-8-sig"))))
    assert (table[1]["error_code"], table[1]["message"][:9]) == ("invalid_item", "platform:")
    assert table[0]["message"] == ""


def test_a_pipe_list_of_dimensions_in_a_csv_cell_is_read(api_url, tmp_path: Path) -> None:
    """Exports join lists with `|`; a file made from one must go back in as it is."""
    source = tmp_path / "dims.csv"
    source.write_text("url,dimensions\n"
                      "https://cdn.example.com/1.mp4,vision|audio\n"
                      "https://cdn.example.com/2.mp4,content | business\n"
                      "https://cdn.example.com/3.mp4,\"vision,audio\"\n")
    assert [line.item["dimensions"] for line in read_lines(source, "csv")] == [
        "vision,audio", "content,business", "vision,audio"]
    assert submit(api_url, str(source), "--no-wait") == 0
    by_url = {task.url: task.dimensions for task in get_services().queries.list(limit=10)[0]}
    assert by_url == {"https://cdn.example.com/1.mp4": ["vision", "audio"],
                      "https://cdn.example.com/2.mp4": ["content", "business"],
                      "https://cdn.example.com/3.mp4": ["vision", "audio"]}


def test_the_eta_is_the_batchs_own_pace_not_the_apis_queue_guess(api_url, tmp_path: Path,
                                                                 capsys, monkeypatch) -> None:
    """The API's `eta_s` (here 640, a guess from the whole queue) is not what is shown."""
    source = tmp_path / "urls.txt"
    source.write_text("https://cdn.example.com/a.mp4\nhttps://cdn.example.com/b.mp4\n")
    assert submit(api_url, str(source), "--no-wait") == 0
    services = get_services()
    waiting = [task.task_id for task in services.queries.list(limit=10)[0]]
    real_batch = Api.batch

    def guessed(self, batch_id: str) -> dict:
        return {**real_batch(self, batch_id), "eta_s": 640.0}

    def one_more_done(_seconds: float) -> None:
        complete(services, waiting.pop())

    monkeypatch.setattr(Api, "batch", guessed)
    monkeypatch.setattr("scripts.submit.time", SimpleNamespace(
        sleep=one_more_done, monotonic=time.monotonic))
    assert submit(api_url, str(source)) == 0
    err = capsys.readouterr().err
    shown = re.findall(r"eta=([^,\]]+)", err)
    assert shown[0] == "-" and set(shown[1:]) == {"00:00"}  # unknown until one finished


def test_the_pace_of_a_batch() -> None:
    pace = Pace(started_s=100.0, finished_at_start=10)
    assert pace.eta_s(105.0, 10, 30) is None
    assert pace.eta_s(110.0, 15, 30) == 30.0
    assert pace.eta_s(120.0, 30, 30) == 0.0


@pytest.mark.parametrize(("name", "content", "message"), [
    ("no-url.csv", "link,uid\nhttps://x/1.mp4,1\n", "no `url` column (columns: link, uid)"),
    ("extra.csv", "url,colour\nhttps://x/1.mp4,red\n", "unknown column 'colour'"),
    ("empty.txt", "\r\n\r\n", "no items"),
    ("bad.jsonl", '{"url": "https://x/1.mp4"}\n{nope\n', "bad.jsonl:2: not valid JSON"),
    ("list.jsonl", '["https://x/1.mp4"]\n', "list.jsonl:1: must be a JSON object"),
    ("latin1.txt", b"https://x/\xe9.mp4\n", "not UTF-8 text"),
])
def test_bad_input_files_are_exit_2(api_url, tmp_path: Path, capsys, name: str, content,
                                    message: str) -> None:
    source = tmp_path / name
    if isinstance(content, bytes):
        source.write_bytes(content)
    else:
        source.write_text(content)
    assert submit(api_url, str(source)) == 2
    assert message in capsys.readouterr().err and task_count() == 0


def test_missing_file_and_bad_arguments_are_exit_2(api_url, tmp_path: Path) -> None:
    assert submit(api_url, str(tmp_path / "missing.csv")) == 2
    with pytest.raises(SystemExit) as exited:
        submit(api_url, str(tmp_path / "x.txt"), "--batch-size", "1001")
    assert exited.value.code == 2


def test_unreachable_api_is_exit_1(tmp_path: Path, capsys, monkeypatch) -> None:
    source = tmp_path / "urls.txt"
    source.write_text("https://cdn.example.com/a.mp4\n")
    monkeypatch.setattr("scripts.submit.RETRIES", 1)
    assert main([str(source), "--api", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "ConnectionError" in capsys.readouterr().err


def test_a_bom_windows_line_ends_and_blank_lines_are_read(tmp_path: Path) -> None:
    source = tmp_path / "v.csv"
    source.write_bytes(CSV_TEXT.encode())
    lines = read_lines(source, "csv")
    assert [(line.number, line.item) for line in lines] == [
        (2, {"url": "https://cdn.example.com/1.mp4", "uid": "7", "dimensions": "audio"}),
        (4, {"url": "https://cdn.example.com/2.mp4"}),
        (5, {"url": "https://cdn.example.com/3.mp4", "uid": "9", "dimensions": "vision"})]
