"""Test media made with the imageio-ffmpeg binary: good, bad and odd files."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-y", "-hide_banner", "-loglevel", "error", *args], check=True)


def make_bad_media(folder: Path) -> None:
    clip = (folder / "clip.mp4").read_bytes()
    (folder / "page.html").write_text("<!doctype html><html><body>not a video</body></html>")
    ffmpeg("-f", "lavfi", "-i", "color=c=red:size=64x64", "-frames:v", "1",
           str(folder / "image.png"))
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "libmp3lame",
           "-f", "mp3", str(folder / "song.mp4"))
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac",
           str(folder / "audio_only.mp4"))
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", str(folder / "voice.wav"))
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "truncated.mp4").write_bytes(clip[: len(clip) // 5])
    ffmpeg("-display_rotation", "90", "-i", str(folder / "clip.mp4"), "-c", "copy",
           str(folder / "phone.mp4"))
    with open(folder / "big.mp4", "wb") as handle:  # 51 MB: over the default 50 MB limit
        handle.write(clip[:64])
        for _ in range(51):
            handle.write(os.urandom(1024 * 1024))
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:size=32x32:rate=1:duration=610",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
           str(folder / "long.mp4"))
