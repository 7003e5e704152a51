"""vtt-submit: tag a file of videos through the batch API and collect the results.

    vtt-submit videos.csv [--api URL] [--token T] [--platform rpa] [--out results.jsonl]
    vtt-submit urls.txt --no-wait

Reads a CSV (a `url` column; optional columns with the other item fields: platform, uid,
dimensions, language, env, callback_url; a `dimensions` cell lists names with `,` or `|`,
as exports write lists), a text file (one URL a line) or JSON Lines (one item object a
line) — UTF-8 with or without a BOM, Windows or Unix line ends, blank lines skipped. Sends
it in batches of up to 1,000 items, each with an Idempotency-Key made from its lines
(content and line number), so running the same command again — `--resume` says so
explicitly — creates nothing twice: the API answers the batches it made the first time.
Then it waits with a progress bar (created / completed / failed / refused, ETA from the
batches' own progress) and writes one result row per line (JSONL, or CSV with a BOM when
`--out` ends in .csv); a refused line's row has status `rejected`, error_code
`invalid_item` and the API's reason in `message`.

A line whose `url` is a local file path (no scheme; relative to the input file's folder
or absolute) is uploaded first (POST /api/v1/uploads, the file streamed to its
`upload_url` with a progress bar) and sent as `upload:<upload_id>`; a run sends its files
again, so `--resume` only spares the URL lines.

Exit codes: 0 every item completed, 3 some were refused or failed, 2 bad input (the file
or an argument), 1 the API could not be reached or refused the call.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm

from shared.tasks.batch_models import MAX_BATCH_ITEMS
from shared.tasks.export import BOM, CSV_FIELDS, csv_cell, csv_row

ITEM_FIELDS = ("url", "platform", "uid", "dimensions", "language", "env", "callback_url")
LIST_SEPARATORS = ("|", ",")
"""Between names in a CSV `dimensions` cell: `|` is how exports write lists."""
REFUSED_CODE = "invalid_item"
"""`error_code` of a line the API refused (its reason goes in `message`)."""
RESULT_FIELDS = [*CSV_FIELDS[:CSV_FIELDS.index("error_code") + 1], "message",
                 *CSV_FIELDS[CSV_FIELDS.index("error_code") + 1:]]
REQUEST_TIMEOUT_S = 60
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
"""tqdm's own remaining time left out: it would count refused lines as instant progress."""
RETRIES = 5
UPLOAD_TIMEOUT_S = (10, 300)
"""Connect, then each read while a file goes up (a whole upload may take longer)."""
UPLOAD_TYPES = {".mp4": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
                ".avi": "video/x-msvideo", ".flv": "video/x-flv", ".3gp": "video/3gpp",
                ".wav": "audio/wav"}
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
"""A URL's scheme (`https:`, `gs:`, `upload:`); one letter and a colon is a Windows drive."""


class BadInput(Exception):
    """The file or an argument cannot be used (exit code 2)."""


class ApiFailed(Exception):
    """The API could not be reached or refused a call (exit code 1)."""


@dataclass
class Line:
    number: int
    item: dict[str, Any]


@dataclass
class Sent:
    """One batch call: its lines and what the API answered for each."""

    lines: list[Line]
    batch_id: str = ""
    outcomes: list[dict[str, Any]] = field(default_factory=list)


def read_lines(path: Path, kind: str) -> list[Line]:
    """The file's items with their line numbers (1-based, as an editor shows them)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise BadInput(f"{path}: cannot read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text") from None
    if kind == "csv":
        lines = _csv_lines(path, text)
    elif kind == "jsonl":
        lines = _jsonl_lines(path, text)
    else:
        lines = [Line(number, {"url": raw.strip()})
                 for number, raw in enumerate(text.splitlines(), 1)
                 if raw.strip() and not raw.lstrip().startswith("#")]
    if not lines:
        raise BadInput(f"{path}: no items")
    return lines


def _csv_lines(path: Path, text: str) -> list[Line]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [name.strip() for name in reader.fieldnames or []]
    if "url" not in columns:
        raise BadInput(f"{path}: no `url` column (columns: {', '.join(columns) or 'none'})")
    unknown = [name for name in columns if name not in ITEM_FIELDS]
    if unknown:
        raise BadInput(f"{path}: unknown column {unknown[0]!r} (allowed: "
                       f"{', '.join(ITEM_FIELDS)})")
    reader.fieldnames = columns
    lines = []
    for row in reader:
        item = {name: value.strip() for name, value in row.items()
                if name is not None and isinstance(value, str) and value.strip()}
        if None in row:
            raise BadInput(f"{path}:{reader.line_num}: more cells than columns")
        if "dimensions" in item:
            item["dimensions"] = _comma_list(item["dimensions"])
        if item:
            lines.append(Line(reader.line_num, item))
    return lines


def _comma_list(cell: str) -> str:
    """`vision|audio` as the API's `vision,audio` (a comma cell stays as it was, so the
    Idempotency-Key of a file sent before is the same)."""
    return LIST_SEPARATORS[1].join(name.strip() for name in cell.split(LIST_SEPARATORS[0]))


def _jsonl_lines(path: Path, text: str) -> list[Line]:
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            raise BadInput(f"{path}:{number}: not valid JSON") from None
        if not isinstance(item, dict):
            raise BadInput(f"{path}:{number}: must be a JSON object")
        lines.append(Line(number, item))
    return lines


def kind_of(path: Path, given: str) -> str:
    if given != "auto":
        return given
    suffix = path.suffix.lower()
    return {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "txt")


def idempotency_key(name: str, lines: list[Line], callback_url: str | None = None) -> str:
    """Stable for the same lines (content and number) under the same batch name."""
    digest = hashlib.sha256(f"{name}\n{callback_url or ''}".encode())
    for line in lines:
        digest.update(f"\n{line.number}\t".encode())
        digest.update(json.dumps(line.item, sort_keys=True, ensure_ascii=False).encode())
    return "vtt-submit-" + digest.hexdigest()


class Api:
    """The few calls vtt-submit makes, each bounded in time and retried when the service
    is briefly unavailable (safe: creates carry an Idempotency-Key)."""

    def __init__(self, base: str, token: str | None, callback_url: str | None = None) -> None:
        self.base = base.rstrip("/")
        self.callback_url = callback_url
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        for attempt in range(RETRIES):
            try:
                response = self.http.request(method, self.base + path,
                                             timeout=REQUEST_TIMEOUT_S, **kwargs)
            except requests.RequestException as error:
                if attempt == RETRIES - 1:
                    raise ApiFailed(f"{self.base}: {type(error).__name__}") from None
                time.sleep(2 ** attempt)
                continue
            in_progress = (response.status_code == 409
                           and "still being processed" in _message(response))
            if (response.status_code in (429, 503) or in_progress) and attempt < RETRIES - 1:
                time.sleep(float(response.headers.get("Retry-After") or 2 ** attempt))
                continue
            if response.status_code >= 400:
                message = _message(response)
                if response.status_code in (400, 413, 415):
                    raise BadInput(f"{path}: {message}")
                raise ApiFailed(f"{path}: HTTP {response.status_code}: {message}")
            return response
        raise ApiFailed(f"{path}: still unavailable after {RETRIES} tries")

    def upload(self, path: Path, show: bool) -> str:
        """The file sent to the API's uploads (issue 35), streamed; returns its `upload:`
        URL. The API key goes only to the API's own route, never to a storage URL."""
        size = path.stat().st_size
        started = self.call("POST", "/api/v1/uploads", json={
            "size_bytes": size, "content_type": UPLOAD_TYPES.get(path.suffix.lower(),
                                                                 "video/mp4")}).json()["data"]
        sender = self.http if started["needs_api_key"] else requests
        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        with open(path, "rb") as handle, tqdm.wrapattr(
                handle, "read", total=size, desc=path.name, unit="B", unit_scale=True,
                disable=not show, file=sys.stderr) as reader:
            try:
                response = sender.put(started["upload_url"], data=reader, headers=headers,
                                      timeout=UPLOAD_TIMEOUT_S)
            except requests.RequestException as error:
                raise ApiFailed(f"upload of {path.name}: {type(error).__name__}") from None
        if response.status_code >= 400:
            raise ApiFailed(f"upload of {path.name}: HTTP {response.status_code}: "
                            f"{_message(response)}")
        return f"upload:{started['upload_id']}"

    def create(self, name: str, lines: list[Line], key: str) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "items": [line.item for line in lines]}
        if self.callback_url:
            body["callback_url"] = self.callback_url
        return self.call("POST", "/api/v1/batches", json=body,
                         headers={"Idempotency-Key": key}).json()["data"]

    def batch(self, batch_id: str) -> dict[str, Any]:
        return self.call("GET", f"/api/v1/batches/{batch_id}").json()["data"]

    def results(self, batch_id: str) -> Iterator[dict[str, Any]]:
        response = self.call("GET", f"/api/v1/batches/{batch_id}/results?format=jsonl")
        for raw in response.iter_lines():
            if raw:
                yield json.loads(raw)


def _message(response: requests.Response) -> str:
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def chunks(lines: list[Line], size: int) -> list[list[Line]]:
    return [lines[start:start + size] for start in range(0, len(lines), size)]


@dataclass
class Pace:
    """How fast this run sees the batches finish: their `progress.finished` between the
    first poll and now, on this machine's clock (no server clock to be skewed against)."""

    started_s: float
    finished_at_start: int

    def eta_s(self, now_s: float, finished: int, total: int) -> float | None:
        """Seconds left at the pace so far; None until something finished while watched."""
        done = finished - self.finished_at_start
        if finished >= total:
            return 0.0
        if done <= 0:
            return None
        return (total - finished) * (now_s - self.started_s) / done


def count_refused(sent: list[Sent]) -> int:
    return sum(1 for batch in sent for outcome in batch.outcomes if not outcome.get("task_id"))


def wait(api: Api, sent: list[Sent], total: int, poll_s: float) -> None:
    """Poll every batch until all are finished, with one progress bar over all lines. The
    ETA is this run's own: the API's `eta_s` guesses from the whole queue and the service's
    recent rate, which for a short job can be minutes off."""
    refused = count_refused(sent)
    created = total - refused
    pace: Pace | None = None
    with tqdm(total=total, unit="video", desc="tagging", file=sys.stderr,
              dynamic_ncols=True, bar_format=BAR_FORMAT) as bar:
        bar.update(refused)
        while True:
            states = [api.batch(batch.batch_id) for batch in sent if batch.batch_id]
            completed = sum(state["counts"]["completed"] for state in states)
            failed = sum(state["counts"]["failed"] for state in states)
            finished = sum(state["progress"]["finished"] for state in states)
            accepted = sum(state["progress"]["total"] for state in states)
            now = time.monotonic()
            pace = pace or Pace(now, finished)
            eta = pace.eta_s(now, finished, accepted)
            # the figures first: an update may redraw the bar, and must not show the old ones
            bar.set_postfix({"created": created, "completed": completed, "failed": failed,
                             "refused": refused,
                             "eta": "-" if eta is None else tqdm.format_interval(eta)},
                            refresh=False)
            bar.update(refused + completed + failed - bar.n)
            bar.refresh()
            if finished >= accepted:
                return
            time.sleep(poll_s)


def result_rows(api: Api, sent: list[Sent]) -> list[dict[str, Any]]:
    """One row per line, in file order: the task's export row, or why it was refused."""
    rows = []
    for batch in sent:
        found = {record["index"]: record for record in api.results(batch.batch_id)}
        for line, outcome in zip(batch.lines, batch.outcomes, strict=True):
            record = found.get(outcome["index"])
            if record is None:
                error = outcome.get("error") or {}
                record = {"task_id": None, "url": str(line.item.get("url", "")),
                          "status": "rejected", "error_code": REFUSED_CODE,
                          "message": f"{error.get('field')}: {error.get('reason')}",
                          "tags": [], "dimensions": {}, "summary": "", "duration_s": None,
                          "cost_usd": None}
            record.pop("index", None)
            rows.append({"line": line.number, **_with_message(record)})
    return rows


def _with_message(record: dict[str, Any]) -> dict[str, Any]:
    """The record with `message` right after `error_code` (None for a task's row)."""
    shown = {}
    for name, value in record.items():
        shown[name] = value
        if name == "error_code":
            shown["message"] = record.get("message")
    return shown


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    if path.suffix.lower() == ".csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["line", *RESULT_FIELDS])
        at = CSV_FIELDS.index("error_code") + 1
        for row in rows:
            cells = csv_row(row)
            cells.insert(at, csv_cell(row["message"] or ""))
            writer.writerow([row["line"], *cells])
        path.write_text(BOM + out.getvalue(), encoding="utf-8", newline="")
        return
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def local_file(url: str, folder: Path) -> Path | None:
    """The file a scheme-less `url` names (relative to the input's folder), else None."""
    if not url or SCHEME.match(url):
        return None
    return (folder / Path(url).expanduser()).resolve()


def upload_files(api: Api, lines: list[Line], folder: Path, *, show: bool) -> None:
    """Each line naming a local file gets it uploaded and its url becomes `upload:<id>`."""
    for line in lines:
        path = local_file(str(line.item.get("url", "")), folder)
        if path is None:
            continue
        if not path.is_file():
            raise BadInput(f"line {line.number}: {line.item['url']}: no such file (a local "
                           f"path is uploaded; a URL needs its scheme)")
        line.item["url"] = api.upload(path, show)


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    lines = read_lines(path, kind_of(path, args.format))
    for line in lines:
        if args.platform and "platform" not in line.item:
            line.item["platform"] = args.platform
    name = args.name or path.name
    api = Api(args.api, args.token, args.callback_url)
    upload_files(api, lines, path.parent, show=not args.no_progress)
    sent = []
    for number, part in enumerate(chunks(lines, args.batch_size), 1):
        answer = api.create(f"{name} ({number})" if len(lines) > args.batch_size else name,
                            part, idempotency_key(name, part, args.callback_url))
        sent.append(Sent(part, answer["batch"]["batch_id"], answer["items"]))
    refused = count_refused(sent)
    print(f"{len(lines) - refused} of {len(lines)} created ({refused} refused) in "
          f"{len(sent)} batch(es): " + ", ".join(batch.batch_id for batch in sent),
          file=sys.stderr)
    if args.no_wait:
        return 0 if not refused else 3
    wait(api, sent, len(lines), args.poll_s)
    rows = result_rows(api, sent)
    out = Path(args.out) if args.out else path.with_name(path.stem + ".results.jsonl")
    write_rows(out, rows)
    by_status = {status: sum(1 for row in rows if row["status"] == status)
                 for status in ("completed", "failed", "rejected")}
    print(f"{by_status['completed']} of {len(rows)} completed, {by_status['failed']} failed, "
          f"{by_status['rejected']} refused; results in {out}", file=sys.stderr)
    return 0 if by_status["completed"] == len(rows) else 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vtt-submit", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="CSV (a url column; optional platform, uid, dimensions, "
                        "language, env, callback_url columns; a dimensions cell may list "
                        "names with , or | as in vision|audio), a text file of URLs, or "
                        "JSON Lines")
    parser.add_argument("--api", default=os.environ.get("VTT_API", "http://127.0.0.1:8080"),
                        help="the API's base URL (VTT_API; default http://127.0.0.1:8080)")
    parser.add_argument("--token", default=os.environ.get("VTT_TOKEN"),
                        help="API token (VTT_TOKEN)")
    parser.add_argument("--platform", default="rpa",
                        help="platform of items that do not name one (default rpa)")
    parser.add_argument("--name", help="batch name (default: the file name)")
    parser.add_argument("--callback-url", help="POSTed each batch once all its items finished")
    parser.add_argument("--format", choices=("auto", "csv", "txt", "jsonl"), default="auto",
                        help="input format (default: from the file extension)")
    parser.add_argument("--batch-size", type=int, default=MAX_BATCH_ITEMS,
                        help=f"items per batch call, 1 to {MAX_BATCH_ITEMS} (keep it the same "
                             "when running again)")
    parser.add_argument("--out", help="results file, .jsonl or .csv (default "
                                      "FILE.results.jsonl next to the input)")
    parser.add_argument("--no-wait", action="store_true", help="return once created")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar while local files are uploaded")
    parser.add_argument("--resume", action="store_true",
                        help="pick up an earlier run: nothing is created twice (the same as "
                             "running the command again)")
    parser.add_argument("--poll-s", type=float, default=5.0, help="seconds between polls")
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= MAX_BATCH_ITEMS:
        parser.error(f"--batch-size: must be 1 to {MAX_BATCH_ITEMS}")
    if args.poll_s <= 0:
        parser.error("--poll-s: must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except BadInput as error:
        print(f"vtt-submit: {error}", file=sys.stderr)
        return 2
    except ApiFailed as error:
        print(f"vtt-submit: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
