"""vtt-submit: tag a file of videos through the batch API and collect the results.

    vtt-submit videos.csv [--api URL] [--token T] [--platform rpa] [--out results.jsonl]
    vtt-submit urls.txt --no-wait

Reads a CSV (a `url` column; optional columns with the other item fields: platform, uid,
dimensions, language, env, callback_url), a text file (one URL a line) or JSON Lines (one
item object a line) — UTF-8 with or without a BOM, Windows or Unix line ends, blank lines
skipped. Sends it in batches of up to 1,000 items, each with an Idempotency-Key made from
its lines (content and line number), so running the same command again — `--resume` says
so explicitly — creates nothing twice: the API answers the batches it made the first time.
Then it waits with a progress bar (created / completed / failed, ETA) and writes one
result row per line (JSONL, or CSV with a BOM when `--out` ends in .csv).

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
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm

from shared.tasks.batch_models import MAX_BATCH_ITEMS
from shared.tasks.export import BOM, CSV_FIELDS, csv_row

ITEM_FIELDS = ("url", "platform", "uid", "dimensions", "language", "env", "callback_url")
REQUEST_TIMEOUT_S = 60
RETRIES = 5


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
        if item:
            lines.append(Line(reader.line_num, item))
    return lines


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


def wait(api: Api, sent: list[Sent], total: int, poll_s: float) -> None:
    """Poll every batch until all are finished, with one progress bar over all lines."""
    created = sum(1 for batch in sent for outcome in batch.outcomes if outcome.get("task_id"))
    refused = total - created
    with tqdm(total=total, unit="video", desc="tagging", file=sys.stderr,
              dynamic_ncols=True) as bar:
        bar.update(refused)
        while True:
            states = [api.batch(batch.batch_id) for batch in sent if batch.batch_id]
            completed = sum(state["counts"]["completed"] for state in states)
            failed = sum(state["counts"]["failed"] for state in states)
            bar.update(refused + completed + failed - bar.n)
            etas = [state.get("eta_s") for state in states if state.get("eta_s") is not None]
            bar.set_postfix(created=created, completed=completed, failed=failed + refused,
                            eta_s=f"{max(etas):.0f}" if etas else "-", refresh=True)
            if all(state["progress"]["finished"] >= state["progress"]["total"]
                   for state in states):
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
                          "status": "rejected",
                          "error_code": f"{error.get('field')}: {error.get('reason')}",
                          "tags": [], "dimensions": {}, "summary": "", "duration_s": None,
                          "cost_usd": None}
            record.pop("index", None)
            rows.append({"line": line.number, **record})
    return rows


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    if path.suffix.lower() == ".csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["line", *CSV_FIELDS])
        for row in rows:
            writer.writerow([row["line"], *csv_row(row)])
        path.write_text(BOM + out.getvalue(), encoding="utf-8", newline="")
        return
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    lines = read_lines(path, kind_of(path, args.format))
    for line in lines:
        if args.platform and "platform" not in line.item:
            line.item["platform"] = args.platform
    name = args.name or path.name
    api = Api(args.api, args.token, args.callback_url)
    sent = []
    for number, part in enumerate(chunks(lines, args.batch_size), 1):
        answer = api.create(f"{name} ({number})" if len(lines) > args.batch_size else name,
                            part, idempotency_key(name, part, args.callback_url))
        sent.append(Sent(part, answer["batch"]["batch_id"], answer["items"]))
    created = sum(1 for batch in sent for outcome in batch.outcomes if outcome.get("task_id"))
    print(f"{created} of {len(lines)} created in {len(sent)} batch(es): "
          + ", ".join(batch.batch_id for batch in sent), file=sys.stderr)
    if args.no_wait:
        return 0 if created == len(lines) else 3
    wait(api, sent, len(lines), args.poll_s)
    rows = result_rows(api, sent)
    out = Path(args.out) if args.out else path.with_name(path.stem + ".results.jsonl")
    write_rows(out, rows)
    ok = sum(1 for row in rows if row["status"] == "completed")
    print(f"{ok} of {len(rows)} completed; results in {out}", file=sys.stderr)
    return 0 if ok == len(rows) else 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vtt-submit", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="CSV (a url column), a text file of URLs, or JSON Lines")
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
