"""Simple visual statistics of the key frames, for the offline LocalTagger: brightness,
dominant colours and how much the picture changes. One ffmpeg process turns every frame
into a 16×16 RGB thumbnail; the rest is arithmetic on 768 bytes per frame."""

from __future__ import annotations

import colorsys
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from shared.video.probe import ffmpeg_exe

THUMB = 16
COLOUR_NAMES = {
    "zh": {"black": "黑色", "white": "白色", "gray": "灰色", "red": "红色", "orange": "橙色",
           "yellow": "黄色", "green": "绿色", "cyan": "青色", "blue": "蓝色", "purple": "紫色",
           "pink": "粉色", "brown": "棕色"},
    "en": {name: name for name in ("black", "white", "gray", "red", "orange", "yellow",
                                   "green", "cyan", "blue", "purple", "pink", "brown")},
}


@dataclass(frozen=True)
class VisualStats:
    brightness: float  # mean luma, 0..1
    colours: list[tuple[str, float]]  # colour name (English key) and share of pixels
    motion: float | None  # mean absolute change between consecutive frames, 0..1


def colour_of(r: int, g: int, b: int) -> str:
    hue, sat, val = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
    if val < 0.2:
        return "black"
    if sat < 0.18:
        return "white" if val > 0.85 else "gray"
    degrees = hue * 360
    if degrees < 15 or degrees >= 345:
        name = "red"
    elif degrees < 40:
        name = "orange"
    elif degrees < 70:
        name = "yellow"
    elif degrees < 160:
        name = "green"
    elif degrees < 200:
        name = "cyan"
    elif degrees < 260:
        name = "blue"
    elif degrees < 290:
        name = "purple"
    else:
        name = "pink"
    if name in ("red", "orange") and val < 0.55:
        return "brown"
    return name


def thumbnails(frames: list[Path]) -> list[bytes]:
    """Each frame as 16×16 RGB bytes, from one ffmpeg process."""
    if not frames:
        return []
    inputs: list[str] = []
    for frame in frames:
        inputs += ["-i", str(frame)]
    graph = "".join(f"[{i}:v]scale={THUMB}:{THUMB},format=rgb24[t{i}];"
                    for i in range(len(frames)))
    graph += "".join(f"[t{i}]" for i in range(len(frames))) + f"concat=n={len(frames)}:v=1[out]"
    run = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *inputs,
         "-filter_complex", graph, "-map", "[out]", "-f", "rawvideo", "-"],
        capture_output=True, timeout=120,
    )
    size = THUMB * THUMB * 3
    if run.returncode != 0:
        return []
    data = run.stdout
    return [data[i:i + size] for i in range(0, len(data) - size + 1, size)]


def visual_stats(frames: list[Path]) -> VisualStats | None:
    thumbs = thumbnails(frames)
    if not thumbs:
        return None
    luma_total, counts, pixels = 0.0, Counter(), 0
    for thumb in thumbs:
        for i in range(0, len(thumb), 3):
            r, g, b = thumb[i], thumb[i + 1], thumb[i + 2]
            luma_total += 0.299 * r + 0.587 * g + 0.114 * b
            counts[colour_of(r, g, b)] += 1
            pixels += 1
    motion = None
    if len(thumbs) > 1:
        diffs = [sum(abs(a - b) for a, b in zip(x, y, strict=True)) / (len(x) * 255)
                 for x, y in zip(thumbs, thumbs[1:], strict=False)]
        motion = sum(diffs) / len(diffs)
    colours = [(name, count / pixels) for name, count in counts.most_common(3)]
    return VisualStats(luma_total / pixels / 255, colours, motion)
