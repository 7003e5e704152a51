"""Key frames: our extractor vs the naive "decode everything with the fps filter" baseline,
same video, same frame count, same run.

    python -m benchmarks.keyframes [--repeat 3]

Videos (generated once under var/bench/): 60 s, 1280x720, 30 fps, H.264, GOP 2 s and 10 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared.video.frames import _SCALE, extract_frames
from shared.video.probe import ffmpeg_exe

ROOT = Path(__file__).resolve().parent.parent

BENCH_DIR = ROOT / "var" / "bench"


def make_video(gop_s: int) -> Path:
    path = BENCH_DIR / f"720p_60s_gop{gop_s}.mp4"
    if not path.exists():
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi",
                        "-i", "testsrc2=size=1280x720:rate=30:duration=60",
                        "-c:v", "libx264", "-preset", "veryfast", "-g", str(gop_s * 30),
                        "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def baseline(video: Path, out: Path, count: int, duration_s: float) -> int:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(video), "-an",
                    "-vf", f"fps={count / duration_s:.6f},{_SCALE}", "-frames:v", str(count),
                    "-q:v", "4", str(out / "%04d.jpg")], check=True)
    return len(list(out.glob("*.jpg")))


def timed(function, *args) -> tuple[float, object]:
    started = time.perf_counter()
    value = function(*args)
    return time.perf_counter() - started, value


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'video':<22} {'method':<10} {'frames':>6} {'ours s':>7} {'baseline s':>10} ratio")
    for gop in (2, 10):
        video = make_video(gop)
        ours, theirs = [], []
        for _ in range(args.repeat):
            work = Path(tempfile.mkdtemp())
            seconds, result = timed(extract_frames, video, work / "ours", 60.0)
            ours.append(seconds)
            count = len(result.frames)
            seconds, produced = timed(baseline, video, work / "base", count, 60.0)
            theirs.append(seconds)
            assert produced == count, (produced, count)
            shutil.rmtree(work)
        mine, base = statistics.median(ours), statistics.median(theirs)
        print(f"{video.name:<22} {result.method:<10} {count:>6} {mine:>7.2f} {base:>10.2f} "
              f"{mine / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
