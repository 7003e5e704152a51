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
    with open(folder / "big.mp4", "wb") as handle:  # 51 MB: over a 50 MB MAX_VIDEO_MB
        handle.write(clip[:64])
        for _ in range(51):
            handle.write(os.urandom(1024 * 1024))
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:size=32x32:rate=1:duration=610",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
           str(folder / "long.mp4"))
    for name, seconds in (("four_hours.mp4", 4 * 3600), ("four_hours_and_a_second.mp4",
                                                         4 * 3600 + 1)):
        ffmpeg("-f", "lavfi", "-i", f"color=c=blue:size=16x16:rate=1:duration={seconds}",
               "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
               str(folder / name))


CJK_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
"""Debian's fonts-noto-cjk (installed by scripts/ensure_services.sh): Chinese and Latin."""


def caption_clip(path: Path, captions: list[dict], *, size: str = "640x360",
                 seconds: float = 6, background: str = "0x203040") -> Path:
    """A clip with burnt-in captions: each {text, start, end, size, colour, x, y}."""
    filters = []
    for index, caption in enumerate(captions):
        text_file = path.with_name(f"{path.stem}-{index}.txt")
        text_file.write_text(caption["text"], encoding="utf-8")
        filters.append(
            f"drawtext=fontfile={CJK_FONT}:textfile={text_file}:expansion=none:"
            f"fontsize={caption.get('size', 40)}:fontcolor={caption.get('colour', 'white')}:"
            f"x={caption.get('x', '(w-tw)/2')}:y={caption.get('y', 'h-th-40')}:"
            f"enable='gte(t,{caption['start']})*lt(t,{caption['end']})'")  # [start, end)
    ffmpeg("-f", "lavfi", "-i", f"color=c={background}:size={size}:duration={seconds}:rate=25",
           "-vf", ",".join(filters) if filters else "null", "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))
    return path


def sound_clip(path: Path, kind: str, text: str = "", voice: str = "cmn",
               seconds: float = 4) -> Path:
    """A wav: `speech` (espeak-ng saying `text` with `voice`), `tone`, `chord`, `melody`,
    `pink`/`white`/`brown` noise, or `silence`."""
    if kind == "speech":
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
        return path
    sources = {
        "tone": ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"],
        "low_tone": ["-f", "lavfi", "-i", f"sine=frequency=150:duration={seconds}"],
        "chord": ["-f", "lavfi", "-i", f"sine=frequency=262:duration={seconds}", "-f", "lavfi",
                  "-i", f"sine=frequency=330:duration={seconds}", "-filter_complex",
                  "amix=inputs=2"],
        "melody": [arg for f in (262, 330, 392, 523) for arg in
                   ("-f", "lavfi", "-i", f"sine=frequency={f}:duration={seconds / 4}")]
        + ["-filter_complex", "concat=n=4:v=0:a=1"],
        "silence": ["-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", str(seconds)],
    }
    for colour in ("pink", "white", "brown"):
        sources[colour] = ["-f", "lavfi", "-i", f"anoisesrc=d={seconds}:c={colour}:a=0.3"]
    ffmpeg(*sources[kind], str(path))
    return path
