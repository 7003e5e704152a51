"""Import Gemini accounts from a JSON file into the pool, all or nothing.

The whole file is validated first; bad entries refuse the file with one message naming
every problem (entry, line, field). Only `api_key` is required; a field the format does not
know refuses the file (a typo would otherwise drop a limit silently). A key listed twice
is imported once, with a warning. A key's `project` (its Google Cloud project: every key
of one project shares its quotas) and `limits` per other model are checked here too; a
project's quotas are the smallest limits any of its keys wrote. The swap happens in one
MULTI/EXEC while the import lock is held (acquisitions wait for it). Today's usage and
each key's state (status, cooldown) stay for keys that remain; `replace` removes keys not
in the file. A password is validated and then dropped: it never reaches Redis or output.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import redis
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from shared import redis_keys
from shared.accounts.checks import KeyCheck, KeyChecker
from shared.accounts.pool import DEFAULT_MODEL, PROJECT_PATTERN, account_id
from shared.redact import mask_key as mask

MAX_FILE_BYTES = 1024 * 1024
"""An account file is a few hundred bytes per key; 1 MB is thousands of keys."""

IMPORT_LOCK_TTL_S = 60

DEFAULT_DAILY_LIMIT = 250
DEFAULT_MINUTE_LIMIT = 10
"""A key whose entry names no limits gets Gemini's free tier for gemini-2.5-flash (250 a
day, 10 a minute; infra's POOL_MINUTE_LIMIT default): too low wastes a paid key's capacity
until its limits are written in the file, too high would run it into 429s."""

PositiveInt = Annotated[StrictInt, Field(gt=0)]
Text = Annotated[StrictStr, Field(min_length=1, max_length=256)]

PROJECT_MAX_LENGTH = 64
"""Google Cloud project ids are at most 30 characters, numbers 12 digits; room for either."""

ProjectName = Annotated[StrictStr, Field(min_length=1, max_length=PROJECT_MAX_LENGTH,
                                         pattern=PROJECT_PATTERN.pattern)]
"""Part of Redis key names (redis_keys.quota_base): no `:`, no spaces."""

ModelName = Annotated[StrictStr, Field(min_length=1, max_length=64,
                                       pattern=r"^[a-z0-9][a-z0-9._-]*$")]


class ImportRefused(Exception):
    """The file (or the moment) is not acceptable; the message says exactly why."""


class ModelLimits(BaseModel):
    """One other model's limits for a key; a limit left out is the main model's."""

    model_config = ConfigDict(extra="forbid")

    minute_limit: PositiveInt | None = None
    daily_limit: PositiveInt | None = None
    tpm_limit: PositiveInt | None = None


class AccountEntry(BaseModel):
    """One key of the file. Its fields are the fields the format knows (a new one is one
    line here); any other refuses the file, naming the closest known one."""

    model_config = ConfigDict(extra="forbid")

    api_key: Annotated[StrictStr, Field(min_length=8, max_length=256)]
    daily_limit: PositiveInt = DEFAULT_DAILY_LIMIT
    minute_limit: PositiveInt = DEFAULT_MINUTE_LIMIT
    tpm_limit: PositiveInt | None = None
    """Input tokens per minute Gemini allows the key (optional: files without it work)."""
    username: Text | None = None
    password: Text | None = None
    phone: Annotated[StrictStr, Field(max_length=64)] | None = None
    email: Annotated[StrictStr, Field(max_length=256)] | None = None
    project: ProjectName | None = None
    """The key's Google Cloud project: its keys share the project's quotas (none: the key
    is its own project)."""
    limits: dict[ModelName, ModelLimits] | None = None
    """Limits of the other models (fallbacks), by model name."""

    def model_limits(self, model: str) -> dict[str, int | None]:
        """minute_limit, quota_daily, tpm_limit this key wrote for `model`."""
        own = (self.limits or {}).get(model) or ModelLimits()
        return {"minute_limit": own.minute_limit or self.minute_limit,
                "quota_daily": own.daily_limit or self.daily_limit,
                "tpm_limit": own.tpm_limit or self.tpm_limit}


@dataclass(frozen=True)
class ImportRow:
    key_id: str
    masked: str
    username: str
    daily_limit: int
    minute_limit: int
    action: str  # added | updated | removed | skipped
    check: str = ""
    """With `--check`: valid | invalid | suspended | region-refused | unreachable (+ detail)."""


def load_accounts(path: Path, warnings: list[str] | None = None,
                  models: Sequence[str] | None = None) -> list[AccountEntry]:
    """Parse and validate the whole file, or raise ImportRefused naming every problem
    (one per line: entry, its line, field). A UTF-8 BOM and CRLF line ends are fine; a
    key listed twice is imported once and the repeat goes into `warnings`, as do the
    projects whose keys wrote different limits. `models` (the main one first): the models
    `limits` may name."""
    if not path.is_file():
        raise ImportRefused(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImportRefused(f"{path}: {size} bytes, over the limit of {MAX_FILE_BYTES}")
    # utf-8-sig: editors on Windows save a byte order mark the JSON parser refuses
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ImportRefused(f"{path}: not JSON (line {error.lineno}, column {error.colno}: "
                            f"{error.msg})") from None
    if not isinstance(data, list):
        raise ImportRefused(f"{path}: must be a JSON list of accounts, got {type(data).__name__}")
    if not data:
        raise ImportRefused(f"{path}: the list is empty")
    entries, problems = _entries(path, text, data, warnings, models)
    if len(problems) == 1:
        raise ImportRefused(f"{path}: {problems[0]}")
    if problems:
        raise ImportRefused(f"{path}: {len(problems)} problems\n"
                            + "\n".join(f"  {problem}" for problem in problems))
    if warnings is not None:
        warnings += [f"{path}: {warning}" for warning in mixed_limits(entries)]
    return entries


def _entries(path: Path, text: str, data: list, warnings: list[str] | None,
             models: Sequence[str] | None) -> tuple[list[AccountEntry], list[str]]:
    """The valid entries (a repeat dropped) and every problem, each naming its entry."""
    lines = _entry_lines(text)
    entries: list[AccountEntry] = []
    seen: dict[str, tuple[int, str | None]] = {}
    problems: list[str] = []
    for index, raw in enumerate(data):
        where = f"entry {index + 1} (line {lines[index]})"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be an object")
            continue
        try:
            entry = AccountEntry.model_validate(raw)
        except ValidationError as error:
            problems += [f"{where}: {problem}" for problem in _describe(error)]
            continue
        problems += [f"{where}: {problem}" for problem in _model_problems(entry, models)]
        if entry.api_key in seen:
            first, project = seen[entry.api_key]
            if project != entry.project:
                problems.append(f"{where}: api_key {mask(entry.api_key)} is listed under "
                                f"project {entry.project or '(none)'} here and under "
                                f"{project or '(none)'} in entry {first}: a key belongs to "
                                "one project")
            elif warnings is not None:
                warnings.append(f"{path}: {where}: api_key {mask(entry.api_key)} repeats "
                                f"entry {first}: imported once")
            continue
        seen[entry.api_key] = (index + 1, entry.project)
        entries.append(entry)
    return entries, problems


def _model_problems(entry: AccountEntry, models: Sequence[str] | None) -> list[str]:
    """`limits` naming the main model (its limits are the entry's own) or a model this
    deployment does not use (a typo would otherwise leave the real model's limits unset)."""
    if not models or not entry.limits:
        return []
    problems = []
    for name in entry.limits:
        if name == models[0]:
            problems.append(f"limits.{name}: the main model's limits are minute_limit, "
                            "daily_limit and tpm_limit")
        elif name not in models:
            known = ", ".join(models[1:]) or "none: GEMINI_FALLBACK_MODELS is empty and " \
                "SEMANTIC_SEARCH is off"
            problems.append(f"limits.{name}: unknown model (the other models: {known})")
    return problems


FILE_FIELDS = {"minute_limit": "minute_limit", "quota_daily": "daily_limit",
               "tpm_limit": "tpm_limit"}
"""A stored limit → its name in the file."""


def mixed_limits(entries: list[AccountEntry]) -> list[str]:
    """A warning for each project whose keys wrote different limits: the smallest written
    is the project's (Gemini has one quota per project and model)."""
    named = sorted({name for entry in entries for name in (entry.limits or {})})
    warnings = []
    for project in sorted({e.project for e in entries if e.project}):
        keys = [e for e in entries if e.project == project]
        for model in ["", *named]:
            for field, written_as in FILE_FIELDS.items():
                values = sorted({v for e in keys
                                 if (v := e.model_limits(model)[field]) is not None})
                if len(values) > 1:
                    shown = written_as + (f" of {model}" if model else "")
                    warnings.append(f"project {project}: its keys wrote different {shown} "
                                    f"({', '.join(map(str, values))}): the project's is the "
                                    f"smallest, {values[0]}")
    return warnings


def _describe(error: ValidationError) -> list[str]:
    """Every field's problem; never a secret's value (nor an unknown field's: `api key`
    may hold the key)."""
    items = error.errors()
    unknown = [str(item["loc"][0]) for item in items if item["type"] == "extra_forbidden"]
    meant = {_closest(name) for name in unknown}
    described = []
    for item in items:
        field = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            described.append(_unknown(field))
        elif item["type"] == "missing" and field in meant:
            continue  # said by the unknown field that was meant to be it
        elif item["type"] == "missing":
            described.append(f"{field}: is required")
        elif field in ("daily_limit", "minute_limit", "tpm_limit"):
            described.append(f"{field}: must be a positive integer (got {item.get('input')!r})")
        elif field in ("api_key", "password"):
            described.append(f"{field}: {item['msg'].lower()}")  # never echo the secret
        else:
            shown = repr(item.get("input"))
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            described.append(f"{field}: {item['msg'].lower()} (got {shown})")
    return described


def _closest(name: str) -> str | None:
    found = difflib.get_close_matches(name.lower(), list(AccountEntry.model_fields), n=1)
    return found[0] if found else None


def _unknown(name: str) -> str:
    shown = name if name.isprintable() and len(name) <= 64 else repr(name[:64])
    meant = _closest(name)
    if meant:
        return f"unknown field {shown} (did you mean {meant}?)"
    return f"unknown field {shown} (known: {', '.join(AccountEntry.model_fields)})"


def _entry_lines(text: str) -> list[int]:
    """Line number where each top-level list entry starts."""
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    lines = []
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == "]":
            return lines
        lines.append(text.count("\n", 0, position) + 1)
        _, position = decoder.raw_decode(text, position)


def plan(client: redis.Redis, entries: list[AccountEntry], replace: bool) -> list[ImportRow]:
    existing = client.smembers(redis_keys.ACCOUNT_IDS)
    rows = [
        ImportRow(account_id(e.api_key), mask(e.api_key), e.username or "", e.daily_limit,
                  e.minute_limit, "updated" if account_id(e.api_key) in existing else "added")
        for e in entries
    ]
    if replace:
        kept = {row.key_id for row in rows}
        for key_id in sorted(existing - kept):
            info = client.hgetall(redis_keys.account_info(key_id))
            rows.append(ImportRow(key_id, mask(info.get("api_key", "")),
                                  info.get("username", ""), 0, 0, "removed"))
    return rows


def import_accounts(client: redis.Redis, entries: list[AccountEntry], *, replace: bool = False,
                    dry_run: bool = False, checks: dict[str, KeyCheck] | None = None,
                    keep_invalid: bool = False,
                    main_model: str = DEFAULT_MODEL) -> list[ImportRow]:
    """Swap the accounts in under the import lock; returns what changed. With `checks`
    (api_key → KeyCheck) only the usable keys are imported, or with `keep_invalid` all of
    them, the others disabled with the reason (the health probes look at them again).
    Every project's quota limits are then the smallest its keys (in the file or already
    in the pool) wrote, per model."""
    checks = checks or {}
    skipped = [e for e in entries if e.api_key in checks and not checks[e.api_key].usable
               and not keep_invalid]
    entries = [e for e in entries if e not in skipped]
    lock = client.lock(redis_keys.ACCOUNT_IMPORT_LOCK, timeout=IMPORT_LOCK_TTL_S, blocking=False)
    if not lock.acquire():
        raise ImportRefused("another import is running (google_accounts:import_lock is held); "
                            "try again when it has finished")
    try:
        rows = plan(client, entries, replace)
        rows += [ImportRow(account_id(e.api_key), mask(e.api_key), e.username or "",
                           e.daily_limit, e.minute_limit, "skipped") for e in skipped]
        rows = [_with_check(row, checks, entries + skipped) for row in rows]
        if dry_run:
            return rows
        removed = {row.key_id for row in rows if row.action == "removed"}
        owners = owner_limits(client, entries, removed, main_model)
        ready_sets = [redis_keys.account_ready(m, main_model) for m in
                      {main_model, *client.smembers(redis_keys.ACCOUNT_MODELS)}]
        pipe = client.pipeline(transaction=True)
        for entry in entries:
            _write_entry(pipe, entry, checks.get(entry.api_key), ready_sets)
        for key_id in removed:
            _remove(pipe, key_id, ready_sets)
        for base, limits in owners.items():
            _write_limits(pipe, base, limits)
        for model in {name for e in entries for name in (e.limits or {})} - {main_model}:
            pipe.sadd(redis_keys.ACCOUNT_MODELS, model)
        pipe.execute()
        return rows
    finally:
        lock.release()


def _write_entry(pipe: redis.client.Pipeline, entry: AccountEntry, check: KeyCheck | None,
                 ready_sets: list[str]) -> None:
    """The key's info (its limits replaced, its state kept), due now in every ready set:
    the next acquire re-checks the key under its new limits (a key parked under its old
    minute limit is free again at once if the new one allows)."""
    key_id = account_id(entry.api_key)
    info = redis_keys.account_info(key_id)
    pipe.hset(info, mapping={"api_key": entry.api_key, "quota_daily": entry.daily_limit,
                             "minute_limit": entry.minute_limit})
    limits = json.dumps({model: own.model_dump(exclude_none=True)
                         for model, own in sorted((entry.limits or {}).items())})
    for field, value in (("tpm_limit", entry.tpm_limit), ("username", entry.username),
                         ("phone", entry.phone), ("email", entry.email),
                         ("project", entry.project),
                         ("limits", limits if entry.limits else None)):
        if value:  # the file says what the key has
            pipe.hset(info, field, value)
        else:
            pipe.hdel(info, field)
    for field, default in (("status", "active"), ("cooldown_until", 0),
                           ("consecutive_failures", 0), ("disabled_reason", ""),
                           ("last_error", "")):
        pipe.hsetnx(info, field, default)
    if check is not None and not check.usable:  # kept, out of service until healed
        pipe.hset(info, mapping={"status": "disabled", "disabled_reason": check.disabled_reason,
                                 "last_error": check.detail})
    pipe.sadd(redis_keys.ACCOUNT_IDS, key_id)
    for name in ready_sets:
        pipe.zadd(name, {key_id: 0})


def _remove(pipe: redis.client.Pipeline, key_id: str, ready_sets: list[str]) -> None:
    pipe.srem(redis_keys.ACCOUNT_IDS, key_id)
    for name in ready_sets:
        pipe.zrem(name, key_id)
    pipe.delete(redis_keys.account_info(key_id), redis_keys.account_daily(key_id),
                redis_keys.account_window(key_id), redis_keys.account_limit_changes(key_id),
                redis_keys.account_usage(key_id), redis_keys.account_probes(key_id))


def owner_limits(client: redis.Redis, entries: list[AccountEntry], removed: set[str],
                 main_model: str) -> dict[str, dict[str, int | None]]:
    """Quota owner base → the limits it gets: per project and model, the smallest each
    limit any of the project's keys wrote — the keys of this file and those already in
    the pool that stay. A model no key of the project names is left to default to the
    main model's (the limits are removed)."""
    written = {account_id(e.api_key): e for e in entries}
    stored = [key_id for key_id in client.smembers(redis_keys.ACCOUNT_IDS)
              if key_id not in written and key_id not in removed]
    pipe = client.pipeline(transaction=False)
    for key_id in stored:
        pipe.hmget(redis_keys.account_info(key_id), "project", "minute_limit", "quota_daily",
                   "tpm_limit", "limits")
    for key_id, found in zip(stored, pipe.execute(), strict=True):
        try:
            written[key_id] = AccountEntry(
                api_key=key_id, project=found[0] or None, minute_limit=int(found[1]),
                daily_limit=int(found[2]), tpm_limit=int(found[3]) if found[3] else None,
                limits=json.loads(found[4]) if found[4] else None)
        except (TypeError, ValueError, ValidationError):
            continue  # a hand-edited hash: acquire reports it, it sets no project limit
    models = {main_model, *client.smembers(redis_keys.ACCOUNT_MODELS)}
    models |= {name for e in written.values() for name in (e.limits or {})}
    owners: dict[str, dict[str, int | None]] = {}
    for key_id, entry in written.items():
        for model in models:
            base = redis_keys.quota_base(key_id, entry.project or "", model, main_model)
            named = model == main_model or model in (entry.limits or {})
            if not entry.project and model == main_model:
                continue  # the key's own info: written with the key
            mine = entry.model_limits(model) if named else dict.fromkeys(FILE_FIELDS)
            owners[base] = _smallest(owners.get(base), mine)
    return owners


def _smallest(have: dict[str, int | None] | None,
              mine: dict[str, int | None]) -> dict[str, int | None]:
    if have is None:
        return dict(mine)
    return {field: min((v for v in (have[field], mine[field]) if v is not None), default=None)
            for field in FILE_FIELDS}


def _write_limits(pipe: redis.client.Pipeline, base: str,
                  limits: dict[str, int | None]) -> None:
    """An owner's limits; its learned limit, window and counts stay."""
    info = redis_keys.quota_info(base)
    for field, value in limits.items():
        if value is None:
            pipe.hdel(info, field)
        else:
            pipe.hset(info, field, value)


def _with_check(row: ImportRow, checks: dict[str, KeyCheck],
                entries: list[AccountEntry]) -> ImportRow:
    for entry in entries:
        check = checks.get(entry.api_key)
        if check is not None and account_id(entry.api_key) == row.key_id:
            shown = check.verdict + (f" ({check.detail})" if check.detail else "")
            return dataclasses.replace(row, check=shown)
    return row


def check_keys(entries: list[AccountEntry], checker: KeyChecker,
               parallel: int = 8) -> dict[str, KeyCheck]:
    """One free call per key, a few at a time (each has the checker's time limit)."""
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(entries)))) as workers:
        found = workers.map(lambda entry: checker.check(entry.api_key), entries)
        return {entry.api_key: check for entry, check in zip(entries, found, strict=True)}


def format_table(rows: list[ImportRow]) -> str:
    checked = any(r.check for r in rows)
    header = f"{'key':<12} {'id':<16} {'username':<24} {'daily':>7} {'minute':>6}  action"
    if checked:
        header = f"{header:<80}  check"
    lines = [header, "-" * len(header)]
    for r in rows:
        line = (f"{r.masked:<12} {r.key_id:<16} {r.username[:24]:<24} {r.daily_limit:>7} "
                f"{r.minute_limit:>6}  {r.action}")
        lines.append(f"{line:<80}  {r.check}" if checked else line)
    actions = ("added", "updated", "removed", "skipped") if checked else (
        "added", "updated", "removed")
    counts = {action: sum(1 for r in rows if r.action == action) for action in actions}
    lines.append(", ".join(f"{count} {action}" for action, count in counts.items()))
    return "\n".join(lines)
