"""Key frames: scene changes plus even coverage, capped, as small JPEGs with timestamps.

The fast path is ONE ffmpeg process that decodes only the key frames (`-skip_frame
nokey`): encoders place key frames at regular intervals and at scene cuts, so they are
the cheap candidates. ffmpeg scores each candidate against the previous one (scene
score), thins out candidates closer than `min_gap` (unless they are a cut), scales them
to ≤ 768 px and writes JPEGs; Python then keeps the cuts first and fills up with the
candidates nearest to evenly spaced targets.

When a video has too few key frames for fair coverage (one every 10 s or better; short
videos need half the target), a second ffmpeg run decodes everything and keeps the
first frame from the middle of each of `wanted` equal steps, at its own time — the only
way to get frames between distant key frames.

Either run can feed a `Tap` (the fingerprint's small grey frames and sound, issue 40) from
the pictures it decodes anyway: every frame at the fingerprint's rate in a full decode,
every key frame (with its time) in the key-frame run — no decode of its own.
"""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from shared.errors import ErrorCode, PermanentError
from shared.video.probe import ffmpeg_exe

MAX_FRAMES = 16
"""Default cap on frames per video."""

MAX_SIDE_PX = 768
"""Longest side of a frame: plenty for tagging, small to store and to send to Gemini."""

TARGET_SPACING_S = 2.0
"""One frame per 2 s of video, up to the cap."""

SCENE_THRESHOLD = 0.3
"""ffmpeg scene score above which two consecutive candidates are a cut."""

MAX_KEYFRAME_GAP_S = 10.0
"""Key frames sparser than this on a long video: fall back to decoding everything."""

SHORT_VIDEO_S = 30.0
"""Up to this length decoding everything is cheap, so coverage may ask for more."""

FRAMES_TIMEOUT_S = 300

_SCALE = (f"scale='if(gt(iw,ih),min({MAX_SIDE_PX},iw),-2)':"
          f"'if(gt(iw,ih),-2,min({MAX_SIDE_PX},ih))'")
_META = re.compile(r"pts_time:(-?[\d.]+)\s*\n.*?lavfi\.scene_score=([\d.]+)")
_SHOWINFO = re.compile(r"\bn:\s*\d+\s+pts:\s*-?\d+\s+pts_time:(-?[\d.]+)")


@dataclass(frozen=True)
class Frame:
    t_s: float
    path: Path
    scene_score: float = 0.0


@dataclass(frozen=True)
class Tap:
    """More outputs of the decode the frames make anyway: the fingerprint's small frames
    (`video_filter` into `frames_path` from a full decode; `keyframe_filter` from the key
    frames, whose times go to `times_path`) and sound (`audio_output`: ffmpeg's output
    options and path; empty for a video without sound). Issue 40."""

    video_filter: str
    frames_path: Path
    audio_output: tuple[str, ...] = ()
    keyframe_filter: str = ""
    """Empty: the key-frame run feeds nothing (the fingerprint decodes on its own)."""

    @property
    def times_path(self) -> Path:
        return self.frames_path.with_suffix(".times")


@dataclass(frozen=True)
class FrameSet:
    frames: list[Frame]
    scene_changes: int
    method: str  # keyframes | decode_all
    cuts: tuple[float, ...] = ()
    """When the detected scene changes happen (seconds): the shot boundaries key moments
    are snapped to."""
    tapped: bool = False
    """The decode also wrote the `Tap`'s outputs (`method` says which: every frame at the
    fingerprint's rate, or the key frames at the times in `Tap.times_path`)."""


def target_count(duration_s: float, cap: int = MAX_FRAMES) -> int:
    return max(1, min(cap, math.ceil(duration_s / TARGET_SPACING_S)))


def extract_frames(video: Path | str, out_dir: Path, duration_s: float,
                   cap: int = MAX_FRAMES, tap: Tap | None = None) -> FrameSet:
    """Pick up to `cap` frames; JPEGs land in `out_dir` as 001.jpg, 002.jpg … in time order.
    `video`: a path or a URL ffmpeg reads in place (a stored video's signed URL). The
    decode that picks them also feeds `tap` (`tapped`; the key-frame run only where the
    tap has a `keyframe_filter`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = target_count(duration_s, cap)
    keyframe_tap = tap if tap is not None and tap.keyframe_filter else None
    candidates = _keyframe_candidates(video, out_dir / "kf", duration_s, wanted, keyframe_tap)
    cuts = tuple(sorted(round(c.t_s, 3) for c in candidates
                        if c.scene_score >= SCENE_THRESHOLD and c.t_s > 0))
    scene_changes = sum(1 for c in candidates if c.scene_score >= SCENE_THRESHOLD)
    if _needs_full_decode(len(candidates), wanted, duration_s):
        if keyframe_tap is not None:  # the sound is written already
            tap = dataclasses.replace(keyframe_tap, audio_output=())
        chosen = _decode_all(video, out_dir / "all", duration_s, wanted, tap)
        method = "decode_all"
    else:
        chosen, method = choose(candidates, wanted, duration_s), "keyframes"
    frames = []
    for index, frame in enumerate(sorted(chosen, key=lambda f: f.t_s), start=1):
        final = out_dir / f"{index:03d}.jpg"
        frame.path.replace(final)
        frames.append(Frame(frame.t_s, final, frame.scene_score))
    for leftover in out_dir.glob("*/*.jpg"):
        leftover.unlink()
    for folder in (out_dir / "kf", out_dir / "all"):
        if folder.exists():
            folder.rmdir()
    tapped = tap is not None and (method == "decode_all" or keyframe_tap is not None)
    return FrameSet(frames, scene_changes, method, cuts, tapped=tapped)


def _needs_full_decode(found: int, wanted: int, duration_s: float) -> bool:
    if found >= wanted:
        return False
    if duration_s <= SHORT_VIDEO_S:
        return found < math.ceil(wanted / 2)
    return found < math.ceil(duration_s / MAX_KEYFRAME_GAP_S)


def choose(candidates: list[Frame], wanted: int, duration_s: float) -> list[Frame]:
    """Cuts first (strongest first, at most half the budget), then even coverage."""
    if len(candidates) <= wanted:
        return list(candidates)
    cuts = sorted((c for c in candidates if c.scene_score >= SCENE_THRESHOLD),
                  key=lambda c: -c.scene_score)[: wanted // 2]
    chosen = {id(c): c for c in cuts}
    remaining = wanted - len(chosen)
    targets = [(i + 0.5) * duration_s / remaining for i in range(remaining)]
    for target in targets:
        free = [c for c in candidates if id(c) not in chosen]
        if not free:
            break
        nearest = min(free, key=lambda c: abs(c.t_s - target))
        chosen[id(nearest)] = nearest
    return list(chosen.values())


def _keyframe_candidates(video: Path | str, folder: Path, duration_s: float,
                         wanted: int, tap: Tap | None = None) -> list[Frame]:
    folder.mkdir(parents=True, exist_ok=True)
    min_gap = duration_s / (wanted * 4)
    select = (f"select='gte(scene,{SCENE_THRESHOLD})+isnan(prev_selected_t)"
              f"+gte(t-prev_selected_t,{min_gap:.3f})'")
    scores = folder / "scores.txt"  # a file: other streams' warnings cannot cut in
    chosen = f"{select},metadata=mode=print:key=lavfi.scene_score:file={_quoted(scores)},{_SCALE}"
    jpegs = ["-fps_mode", "passthrough", "-q:v", "4", "-f", "image2", str(folder / "%04d.jpg")]
    if tap is None:
        _run(["-skip_frame", "nokey", "-i", str(video), "-an", "-sn", "-dn", "-vf", chosen,
              *jpegs])
    else:  # the same key frames, small and grey, with their times (and the sound)
        times = ("metadata=mode=add:key=tap:value=1,"
                 f"metadata=mode=print:file={_quoted(tap.times_path)}")
        _run(["-skip_frame", "nokey", "-i", str(video), "-sn", "-dn", "-filter_complex",
              f"[0:v:0]split=2[k][t];[k]{chosen}[frames];[t]{tap.keyframe_filter},{times}[tap]",
              "-map", "[frames]", *jpegs, "-map", "[tap]", "-fps_mode", "passthrough",
              "-f", "rawvideo", str(tap.frames_path), *tap.audio_output])
    found = [(float(t), float(score)) for t, score in _META.findall(scores.read_text())]
    scores.unlink()
    files = sorted(folder.glob("*.jpg"))
    return [Frame(max(0.0, t), path, score) for (t, score), path in zip(found, files, strict=True)]


def _quoted(path: Path) -> str:
    """A path as a filter option's value (quoted: a path may hold ':' or ',')."""
    if "'" in str(path):
        raise ValueError(f"a work path with a quote: {path}")
    return f"'{path}'"


def _decode_all(video: Path | str, folder: Path, duration_s: float, wanted: int,
                tap: Tap | None = None) -> list[Frame]:
    folder.mkdir(parents=True, exist_ok=True)
    # The first frame at or after the middle of each of `wanted` equal steps, with its own
    # time: the `fps` filter's output time is its step's start, while the picture it
    # keeps is the step's last frame (half a step later).
    step = max(duration_s, 0.001) / wanted
    frames = f"select='gte(t,(selected_n+0.5)*{step:.6f})',{_SCALE},showinfo"
    jpegs = ["-frames:v", str(wanted), "-fps_mode", "passthrough", "-q:v", "4",
             "-f", "image2", str(folder / "%04d.jpg")]
    if tap is None:
        stderr = _run(["-i", str(video), "-an", "-sn", "-dn", "-vf", frames, *jpegs])
    else:  # one decode, two pictures (and the sound)
        stderr = _run([
            "-i", str(video), "-filter_complex",
            f"[0:v:0]split=2[k][t];[k]{frames}[frames];[t]{tap.video_filter}[tap]",
            "-map", "[frames]", *jpegs, "-map", "[tap]", "-f", "rawvideo",
            str(tap.frames_path), *tap.audio_output,
        ])
    times = [float(t) for t in _SHOWINFO.findall(stderr)]
    files = sorted(folder.glob("*.jpg"))
    return [Frame(max(0.0, t), path) for t, path in zip(times, files, strict=True)]


def _run(arguments: list[str]) -> str:
    try:
        run = subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", *arguments],
            capture_output=True, text=True, errors="replace", timeout=FRAMES_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise PermanentError("key frames took too long",
                             error_code=ErrorCode.VIDEO_UNREADABLE) from None
    if run.returncode != 0:
        raise PermanentError("key frames could not be decoded",
                             error_code=ErrorCode.VIDEO_UNREADABLE)
    return run.stderr
