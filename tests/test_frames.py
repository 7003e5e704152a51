"""Key frames: scene changes plus even coverage, capped, ≤ 768 px JPEGs with timestamps."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from shared.video.frames import MAX_SIDE_PX, Frame, choose, extract_frames
from tests.media import FFMPEG, ffmpeg


def jpeg_size(path: Path) -> tuple[int, int]:
    run = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True,
                         text=True)
    match = re.search(r"Video: mjpeg.*?, (\d+)x(\d+)", run.stderr)
    assert match, run.stderr
    return int(match[1]), int(match[2])


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("frames")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=40",
           "-c:v", "libx264", "-preset", "ultrafast", "-g", "60", "-pix_fmt", "yuv420p",
           str(folder / "gop2.mp4"))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15:duration=40",
           "-c:v", "libx264", "-preset", "ultrafast", "-g", "10000", "-sc_threshold", "0",
           "-pix_fmt", "yuv420p", str(folder / "one_keyframe.mp4"))
    ffmpeg("-f", "lavfi", "-i", "color=c=black:size=640x360:rate=25:duration=3",
           "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=3",
           "-f", "lavfi", "-i", "smptehdbars=size=640x360:rate=25:duration=3",
           "-filter_complex", "[0:v][1:v][2:v]concat=n=3:v=1[v]", "-map", "[v]",
           "-c:v", "libx264", "-preset", "veryfast", "-g", "250", "-pix_fmt", "yuv420p",
           str(folder / "cuts.mp4"))  # x264 places key frames at cuts (not in ultrafast)
    ffmpeg("-display_rotation", "90", "-i", str(folder / "gop2.mp4"), "-t", "4", "-c", "copy",
           str(folder / "rotated.mp4"))
    return folder


def test_keyframes_path_caps_scales_and_spreads(videos: Path, tmp_path: Path) -> None:
    result = extract_frames(videos / "gop2.mp4", tmp_path, duration_s=40.0)
    assert result.method == "keyframes" and len(result.frames) == 16
    times = [f.t_s for f in result.frames]
    assert times == sorted(times) and 0 <= times[0] < 5 and times[-1] > 34
    assert max(b - a for a, b in zip(times, times[1:], strict=False)) <= 6
    for index, frame in enumerate(result.frames, start=1):
        assert frame.path.name == f"{index:03d}.jpg"
        assert max(jpeg_size(frame.path)) == MAX_SIDE_PX
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{i:03d}.jpg" for i in range(1, 17)]


def test_sparse_keyframes_fall_back_to_decoding(videos: Path, tmp_path: Path) -> None:
    result = extract_frames(videos / "one_keyframe.mp4", tmp_path, duration_s=40.0)
    assert result.method == "decode_all" and len(result.frames) == 16
    times = [f.t_s for f in result.frames]
    # the first frame from the middle of each of 16 steps of 2.5 s, at its own time (15 fps)
    assert all(0 <= t - (1.25 + 2.5 * i) < 1 / 15 + 0.001 for i, t in enumerate(times)), times
    assert jpeg_size(result.frames[0].path) == (320, 240)  # never upscaled


def test_scene_cuts_are_counted_and_kept(videos: Path, tmp_path: Path) -> None:
    result = extract_frames(videos / "cuts.mp4", tmp_path, duration_s=9.0, cap=3)
    assert result.scene_changes >= 2
    times = [f.t_s for f in result.frames]
    assert any(2.9 <= t <= 3.2 for t in times) and any(5.9 <= t <= 6.2 for t in times)


def test_rotation_is_applied_to_frames(videos: Path, tmp_path: Path) -> None:
    result = extract_frames(videos / "rotated.mp4", tmp_path, duration_s=4.0)
    width, height = jpeg_size(result.frames[0].path)
    assert height == MAX_SIDE_PX and width < height


def test_choose_prefers_cuts_then_even_coverage() -> None:
    candidates = [Frame(float(t), Path(f"{t}.jpg"), 0.9 if t == 7 else 0.0) for t in range(20)]
    chosen = sorted(f.t_s for f in choose(candidates, 4, 20.0))
    assert 7.0 in chosen and len(chosen) == 4
    assert choose(candidates[:3], 4, 20.0) == candidates[:3]
