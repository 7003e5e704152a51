"""Is one fingerprinted video a copy of another, and how are their timelines aligned?

The offset (a copy trimmed at the start plays the source `offset_s` later) comes from
the audio's codes in 100 ms steps when both have sound, else from the frame hashes; when
another offset fits almost as well (a loop, a still stretch, a repeated sound) the offset
is ambiguous and the match is refused, except for two videos of the same length at offset
0 (nothing was trimmed). The whole of both videos must match: every 5 s window of the
overlap on its own, and the overlap must cover both videos but for the trim.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.video.fingerprint import Fingerprint

MAX_OFFSET_S = 3.0
"""Largest trim recognised (the index looks this far around each anchor)."""
OFFSET_STEP_S = 0.1
FRAME_BITS = 63
FRAME_MATCH_BITS = 18
"""Two frames whose hashes differ in at most this many bits show the same picture."""
WINDOW_S = 5.0
WINDOW_MATCH = 0.6
"""Share of the frame pairs in every 5 s window that must match."""
MIN_WINDOW_PAIRS = 3
"""A window with fewer frame pairs (both not flat) is not judged on its own."""
MIN_SIMILARITY = 0.5
AUDIO_MAX_BER = 0.3
"""Audio codes differing in more than this share of bits are not the same sound."""
AMBIGUOUS_MARGIN = 0.2
"""A second offset (further than 0.5 s) whose error is within this of the best's."""
DURATION_SLACK_S = 0.25


@dataclass(frozen=True)
class Comparison:
    """How `copy` relates to `source`: similarity in [0, 1], the offset (copy time t is
    source time t + offset_s), the scale (copy's picture width / source's), and whether
    it is a match; `reason` says why not."""

    match: bool
    similarity: float
    offset_s: float
    scale: float
    duration_delta_s: float
    reason: str | None = None


def compare(copy: Fingerprint, source: Fingerprint) -> Comparison:
    """The verdict for a candidate found by the index."""
    delta = round(copy.duration_s - source.duration_s, 3)
    scale = round(copy.content_width / max(source.content_width, 1e-6), 3)
    if abs(delta) > MAX_OFFSET_S + DURATION_SLACK_S:
        return _no(0.0, 0.0, scale, delta, "durations differ")
    if (copy.audio is None) != (source.audio is None):
        return _no(0.0, 0.0, scale, delta, "one has sound, the other not")
    offset, ambiguous = find_offset(copy, source)
    similarity, windows_ok, covered = frame_agreement(copy, source, offset)
    if ambiguous:
        return _no(similarity, offset, scale, delta, "the offset is ambiguous")
    if not covered:
        return _no(similarity, offset, scale, delta, "only part of the video overlaps")
    if copy.audio is not None and audio_error(copy.audio, source.audio, offset) > AUDIO_MAX_BER:
        return _no(similarity, offset, scale, delta, "the sound differs")
    if not windows_ok or similarity < MIN_SIMILARITY:
        return _no(similarity, offset, scale, delta, "the pictures differ")
    return Comparison(True, similarity, offset, scale, delta)


def _no(similarity: float, offset: float, scale: float, delta: float,
        reason: str) -> Comparison:
    return Comparison(False, similarity, offset, scale, delta, reason)


def _offsets() -> np.ndarray:
    count = int(round(MAX_OFFSET_S / OFFSET_STEP_S))
    return np.arange(-count, count + 1) * OFFSET_STEP_S


def find_offset(copy: Fingerprint, source: Fingerprint) -> tuple[float, bool]:
    """The best offset and whether another one fits about as well."""
    offsets = _offsets()
    errors = np.array([1 - similarity_at(copy, source, o) for o in offsets])
    if copy.audio is not None and source.audio is not None:  # the sound's 100 ms steps
        errors += np.array([audio_error(copy.audio, source.audio, o) for o in offsets])
    best = int(np.argmin(errors))
    far = np.abs(offsets - offsets[best]) > 0.5
    runner_up = errors[far].min() if far.any() else 1.0
    ambiguous = runner_up - errors[best] < AMBIGUOUS_MARGIN
    same_length = abs(copy.duration_s - source.duration_s) < DURATION_SLACK_S
    zero = len(offsets) // 2
    if ambiguous and same_length and errors[zero] - errors[best] < AMBIGUOUS_MARGIN:
        return 0.0, False  # nothing trimmed: the start is the start
    return round(float(offsets[best]), 1), bool(ambiguous)


def audio_error(copy: np.ndarray, source: np.ndarray | None, offset_s: float) -> float:
    """Share of differing bits between the aligned audio codes (1.0: no overlap)."""
    if source is None:
        return 1.0
    shift = int(round(offset_s / OFFSET_STEP_S))
    start_copy, start_source = max(0, -shift), max(0, shift)
    length = min(len(copy) - start_copy, len(source) - start_source)
    if length < 10:
        return 1.0
    diff = copy[start_copy:start_copy + length] ^ source[start_source:start_source + length]
    return float(np.bitwise_count(diff).mean() / 15)


def pairs_at(copy: Fingerprint, source: Fingerprint,
             offset_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Indexes (in copy, in source) of the frames shown at the same time at an offset:
    the source's frame nearest each copy frame's time, if within the coarser sampling's
    tolerance (half a step of a fixed rate; a key frame's: KEYFRAME_TOLERANCE_S), and
    neither flat."""
    wanted = copy.sample_times + offset_s
    times = source.sample_times
    right = np.clip(np.searchsorted(times, wanted), 0, len(times) - 1)
    left = np.maximum(right - 1, 0)
    nearest = np.where(np.abs(times[left] - wanted) <= np.abs(times[right] - wanted),
                       left, right)
    close = np.abs(times[nearest] - wanted) <= max(copy.tolerance_s, source.tolerance_s)
    keep = close & ~copy.flat & ~source.flat[nearest]
    return np.flatnonzero(keep), nearest[keep]


def pair_bits(copy: Fingerprint, source: Fingerprint,
              offset_s: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(copy's paired frame indexes, differing bits of each pair) at an offset; None
    under 3 pairs (too few to judge)."""
    ours, theirs = pairs_at(copy, source, offset_s)
    if len(ours) < 3:
        return None
    return ours, np.bitwise_count(copy.hashes[ours] ^ source.hashes[theirs])


def similarity_at(copy: Fingerprint, source: Fingerprint, offset_s: float) -> float:
    """`frame_agreement`'s similarity alone (the offset search tries 61)."""
    paired = pair_bits(copy, source, offset_s)
    if paired is None:
        return 0.0
    return round(max(0.0, 1 - float(paired[1].mean()) / (FRAME_BITS / 2)), 3)


def frame_agreement(copy: Fingerprint, source: Fingerprint,
                    offset_s: float) -> tuple[float, bool, bool]:
    """(similarity, every window matches, the overlap covers both videos) at an offset.
    Windows are WINDOW_S long, or longer where the frames are sparse (key frames), so
    that each holds MIN_WINDOW_PAIRS pairs on average; the pairs as a whole must match
    as well as each window."""
    paired = pair_bits(copy, source, offset_s)
    if paired is None:
        return 0.0, False, False
    ours, bits = paired
    similarity = float(max(0.0, 1 - bits.mean() / (FRAME_BITS / 2)))
    matched = bits <= FRAME_MATCH_BITS
    overlap = (min(copy.duration_s + offset_s, source.duration_s) - max(offset_s, 0.0))
    window = max(WINDOW_S, MIN_WINDOW_PAIRS * overlap / len(ours))
    windows = (copy.sample_times[ours] // window).astype(int)
    counts = np.bincount(windows)
    shares = np.bincount(windows, matched) / np.maximum(counts, 1)
    judged = counts >= MIN_WINDOW_PAIRS  # a window of mostly flat frames says little
    windows_ok = bool(judged.any() and (shares[judged] >= WINDOW_MATCH).all()
                      and matched.mean() >= WINDOW_MATCH)
    slack = abs(offset_s) + DURATION_SLACK_S
    covered = (overlap >= copy.duration_s - slack - abs(offset_s)
               and overlap >= source.duration_s - slack - abs(offset_s))
    return round(similarity, 3), windows_ok, covered
