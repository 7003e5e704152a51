"""Fingerprints of the tasks' videos (issue 40): the row per task in `video_fingerprints`
and the Redis band index that finds the candidates for a near-duplicate in sub-linear time.

Index (multi-index hashing): each video has ANCHORS frames at fixed shares of its length;
each anchor's 63-bit hash is cut into 4 bands of 16 bits; a band's value and the video's
duration class (durations within 25 %) name one entry that holds the fingerprint ids (a
hash per band, class and high byte, a field per low byte: small hashes Redis packs). A
copy that flipped a few bits of a frame keeps at least one band of most anchors intact.
A lookup reads the entries of the query's frames around each anchor (a trimmed copy is
shifted by up to MAX_OFFSET_S), and those of its anchor frames with one bit flipped
(multi-probe: a copy 10–15 bits away from its source often keeps no band intact, but one
within a bit), in one script call and counts the hits per id; the ids hit
most are the candidates, which `shared/video/similarity.compare` then judges on the
whole fingerprint.

The database row is the truth; the index only proposes. A stale entry (its task deleted)
finds no row and is skipped; a Redis that is down proposes nothing (the video is tagged
afresh) and is logged.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
import sqlalchemy as sa

from shared import redis_keys
from shared.lua import read_script
from shared.redis_conn import REDIS_DOWN
from shared.tasks.db import begin, connect, utcnow
from shared.tasks.schema import video_fingerprints as f
from shared.tasks.schema import video_tasks as t
from shared.video.fingerprint import Fingerprint
from shared.video.similarity import DURATION_SLACK_S, FRAME_BITS, MAX_OFFSET_S

ANCHORS = 6
BANDS = 4
BAND_BITS = 16
DURATION_CLASS = 1.25
"""Ratio between the durations that bound one class."""
CANDIDATES = 10
"""Ids with the most hits that are judged on their whole fingerprint."""

log = logging.getLogger("vision_to_tag.reuse")
_APPEND = read_script(__file__, "reuse_index.lua")
_LOOKUP = read_script(__file__, "reuse_lookup.lua")


@dataclass(frozen=True)
class StoredFingerprint:
    """A candidate as stored: its task's status and result with its fingerprint."""

    id: int
    task_id: str
    fingerprint: Fingerprint
    status: str | None
    tags: dict[str, Any] | None
    team: str | None = None


def duration_class(duration_s: float) -> int:
    return int(math.floor(math.log(max(duration_s, 1.0)) / math.log(DURATION_CLASS)))


def anchor_indexes(fp: Fingerprint) -> list[int]:
    """The hashed frame nearest each anchor time (none where every frame is flat)."""
    lively = np.flatnonzero(~fp.flat)
    if not len(lively):
        return []
    times = fp.sample_times[lively]
    found = []
    for k in range(ANCHORS):
        wanted = (k + 0.5) / ANCHORS * fp.duration_s
        found.append(int(lively[np.argmin(np.abs(times - wanted))]))
    return sorted(set(found))


def entry(band: int, cls: int, value: int) -> tuple[str, str]:
    """(key, field) of a band's 16-bit value: the key holds its high byte, the field the
    low one (hashes of at most 256 short fields, which Redis packs)."""
    return redis_keys.reuse_index(band, cls, value >> 8), str(value & 0xFF)


def band_entries(frame_hash: int, classes: tuple[int, ...]) -> list[tuple[str, str]]:
    """(key, field) of each band of one frame hash, in each duration class."""
    return [entry(band, cls, (frame_hash >> (band * BAND_BITS)) & 0xFFFF)
            for band in range(BANDS) for cls in classes]


def copy_classes(duration_s: float) -> tuple[int, ...]:
    """The duration classes a copy's source can be filed under: those of the durations
    `compare` accepts (within MAX_OFFSET_S + DURATION_SLACK_S). One or two for a long
    video; reading all three around its own class returned three times the ids, most of
    them noise, and that transfer was most of a lookup's time."""
    reach = MAX_OFFSET_S + DURATION_SLACK_S
    return tuple(range(duration_class(duration_s - reach), duration_class(duration_s + reach) + 1))


def query_entries(fp: Fingerprint, probe: bool = True) -> list[tuple[str, str]]:
    """What a lookup reads: the bands of the query's frames within MAX_OFFSET_S of each
    anchor time, in the duration classes a source may be filed under, and (`probe`) those
    of its anchor frames with a bit flipped."""
    times = fp.sample_times
    anchors = (np.arange(ANCHORS) + 0.5) / ANCHORS * fp.duration_s
    near = (np.abs(times[:, None] - anchors[None, :]) <= MAX_OFFSET_S).any(axis=1) & ~fp.flat
    wanted = np.unique(fp.hashes[near])
    classes = copy_classes(fp.duration_s)
    entries: set[tuple[str, str]] = set()
    for band in range(BANDS):
        values = ((wanted >> np.uint64(band * BAND_BITS)) & np.uint64(0xFFFF)).tolist()
        entries.update(entry(band, cls, value) for value in set(values) for cls in classes)
    for index in anchor_indexes(fp) if probe else ():  # the anchor frames, probed
        entries.update(probe_entries(int(fp.hashes[index]), duration_class(fp.duration_s)))
    return sorted(entries)


def probe_entries(frame_hash: int, cls: int) -> list[tuple[str, str]]:
    """(key, field) of the band each one-bit change of a frame hash lands in (multi-probe:
    a copy whose anchor frame kept no band intact often kept one within a bit). Only the
    query's own anchors in its own class: 63 more fields an anchor, where probing every
    frame near the anchors in three classes would be 39 times that."""
    return [entry(bit // BAND_BITS, cls,
                  ((frame_hash ^ (1 << bit)) >> (bit // BAND_BITS * BAND_BITS)) & 0xFFFF)
            for bit in range(FRAME_BITS)]


class FingerprintStore:
    """Fingerprint rows behind one engine, their band index in one Redis."""

    def __init__(self, engine: sa.Engine, client: redis.Redis) -> None:
        self.engine = engine
        self.redis = client

    def save(self, task_id: str, fp: Fingerprint) -> int:
        """Store (or replace, on a rerun) the task's fingerprint and index it; its id."""
        values = {"duration_s": fp.duration_s, "data": fp.to_bytes(), "created_at": utcnow()}
        with begin(self.engine) as conn:
            found = conn.execute(sa.select(f.c.id).where(f.c.task_id == task_id)).scalar()
            if found is None:
                found = conn.execute(sa.insert(f).values(task_id=task_id, **values)
                                     ).inserted_primary_key[0]
            else:
                conn.execute(sa.update(f).where(f.c.id == found).values(**values))
        self.index(int(found), fp)
        return int(found)

    def index(self, fp_id: int, fp: Fingerprint) -> None:
        cls = duration_class(fp.duration_s)
        entries = [entry for i in anchor_indexes(fp)
                   for entry in band_entries(int(fp.hashes[i]), (cls,))]
        keys, fields = [key for key, _ in entries], [field for _, field in entries]
        try:
            self.redis.eval(_APPEND, len(keys), *keys, f"{fp_id:08x}", *fields)
        except REDIS_DOWN as error:
            log.warning("reuse index: fingerprint %s not indexed (%s)", fp_id,
                        type(error).__name__)

    def candidates(self, fp: Fingerprint, limit: int = CANDIDATES,
                   before_id: int | None = None) -> list[int]:
        """Fingerprint ids sharing the most band entries with `fp`, most first."""
        return self.lookup(query_entries(fp), limit, before_id)

    def lookup(self, entries: list[tuple[str, str]], limit: int = CANDIDATES,
               before_id: int | None = None) -> list[int]:
        """The ids found under `entries` (key, field), those hit most first, in one
        script call (none when Redis is down)."""
        try:
            packed = self.redis.eval(_LOOKUP, len(entries), *(key for key, _ in entries),
                                     *(field for _, field in entries))
        except REDIS_DOWN as error:
            log.warning("reuse index unavailable (%s): no candidates", type(error).__name__)
            return []
        ids = np.frombuffer(bytes.fromhex(packed or ""), dtype=">u4")
        if before_id is not None:
            ids = ids[ids < before_id]
        found, hits = np.unique(ids, return_counts=True)
        order = np.argsort(-hits, kind="stable")[:limit]
        return [int(found[i]) for i in order]

    def load(self, ids: list[int], team: str | None = None) -> list[StoredFingerprint]:
        """The candidates that still exist, in the order asked, with their task (only
        `team`'s tasks unless None)."""
        if not ids:
            return []
        query = (sa.select(f.c.id, f.c.task_id, f.c.data, t.c.status, t.c.tags, t.c.team)
                 .select_from(f.outerjoin(t, t.c.task_id == f.c.task_id))
                 .where(f.c.id.in_(ids), *(() if team is None else (t.c.team == team,))))
        with connect(self.engine) as conn:
            rows = {row.id: row for row in conn.execute(query)}
        return [StoredFingerprint(i, rows[i].task_id, Fingerprint.from_bytes(rows[i].data),
                                  rows[i].status, rows[i].tags, rows[i].team)
                for i in ids if i in rows and rows[i].status is not None]

    def get(self, task_id: str) -> tuple[int, Fingerprint] | None:
        with connect(self.engine) as conn:
            row = conn.execute(sa.select(f.c.id, f.c.data).where(f.c.task_id == task_id)
                               ).first()
        return (int(row.id), Fingerprint.from_bytes(row.data)) if row else None
