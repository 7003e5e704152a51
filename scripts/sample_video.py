"""Generate test and demo videos with the ffmpeg binary of imageio-ffmpeg.

    python scripts/sample_video.py out.mp4 [--seconds 6] [--size 720x1280] [--no-audio]
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import imageio_ffmpeg

CAPTION_FONTS = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
                 "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
"""CJK fonts a caption can be drawn with (Debian fonts-noto-cjk / fonts-wqy-microhei)."""


def caption_filter(text: str, path: Path) -> list[str]:
    """ffmpeg arguments that burn `text` near the bottom, when a CJK font is installed."""
    font = next((f for f in CAPTION_FONTS if Path(f).exists()), None)
    if font is None:
        return []
    text_file = path.with_suffix(".caption.txt")
    text_file.write_text(text, encoding="utf-8")
    return ["-vf", f"drawtext=fontfile={font}:textfile={text_file}:expansion=none:"
                   "fontsize=h/24:fontcolor=white:box=1:boxcolor=black@0.5:"
                   "x=(w-tw)/2:y=h-th-h/8"]


def make_video(
    path: Path, *, seconds: float = 6, size: str = "720x1280", fps: int = 25,
    audio: bool = True, source: str = "testsrc2", extra: list[str] | None = None,
) -> Path:
    """An H.264 (+ AAC) file from a lavfi pattern: testsrc2, smptebars, color=c=red…"""
    path.parent.mkdir(parents=True, exist_ok=True)
    pattern = f"{source}=size={size}:rate={fps}" if "=" not in source else f"{source}:size={size}"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
               "-f", "lavfi", "-i", f"{pattern}:duration={seconds}"]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                    "-c:a", "aac", "-shortest"]
    command += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                *(extra or []), str(path)]
    subprocess.run(command, check=True)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="generate a sample video")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--size", default="720x1280")
    parser.add_argument("--no-audio", action="store_true")
    args = parser.parse_args()
    print(make_video(args.out, seconds=args.seconds, size=args.size, audio=not args.no_audio))
