"""Key moments that match the video: inside it, in order, on its shot boundaries, and not
said twice. Applied to every tagger's answer (models invent timestamps past the end)."""

from __future__ import annotations

import bisect

from shared.tagging.result import KeyMoment

SNAP_S = 1.0
"""A moment's start or end this close to a detected shot boundary moves onto it."""


def fit(moments: list[KeyMoment], duration_s: float | None,
        cuts: tuple[float, ...] = ()) -> tuple[list[KeyMoment], list[str]]:
    """(fitted moments in time order, warnings). Without a known duration the moments
    are kept as answered (only `end_s >= start_s`), with a warning."""
    warnings: list[str] = []
    if not duration_s or duration_s <= 0:
        fitted = [_ordered(m) for m in moments]
        if fitted:
            warnings.append("video duration unknown: key moments not checked against it")
        return _merged(sorted(fitted, key=lambda m: (m.start_s, m.end_s))), warnings
    inside, outside = [], 0
    for moment in moments:
        if moment.start_s >= duration_s:
            outside += 1
            continue
        start = min(moment.start_s, duration_s)
        end = min(max(moment.end_s, start), duration_s)
        start, end = _snap(start, cuts), _snap(end, cuts)
        inside.append(moment.model_copy(update={
            "start_s": round(start, 2), "end_s": round(max(end, start), 2)}))
    if outside:
        warnings.append(f"{outside} key moment(s) past the end of the video "
                        f"({duration_s:g} s) dropped")
    return _merged(sorted(inside, key=lambda m: (m.start_s, m.end_s))), warnings


def _ordered(moment: KeyMoment) -> KeyMoment:
    return moment.model_copy(update={"end_s": max(moment.end_s, moment.start_s)})


def _snap(t: float, cuts: tuple[float, ...]) -> float:
    """The nearest boundary within SNAP_S, else t."""
    if not cuts:
        return t
    index = bisect.bisect_left(cuts, t)
    near = [cuts[i] for i in (index - 1, index) if 0 <= i < len(cuts)]
    best = min(near, key=lambda cut: abs(cut - t))
    return best if abs(best - t) <= SNAP_S else t


def _merged(moments: list[KeyMoment]) -> list[KeyMoment]:
    """Overlapping moments with the same tags become one (the union of their times)."""
    out: list[KeyMoment] = []
    for moment in moments:
        same = next((m for m in reversed(out) if _same_subject(m, moment)
                     and moment.start_s <= m.end_s), None)
        if same is None:
            out.append(moment)
            continue
        index = out.index(same)
        out[index] = same.model_copy(update={"end_s": max(same.end_s, moment.end_s)})
    return out


def _same_subject(a: KeyMoment, b: KeyMoment) -> bool:
    """Same non-empty tags; untagged moments only when they say the same thing."""
    if a.tags or b.tags:
        return set(a.tags) == set(b.tags)
    return a.description == b.description
