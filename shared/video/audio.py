"""The audio track as a small file (for TAG_INPUT=frames): mono 16 kHz MP3 at 32 kbit/s,
about 240 KB per minute — what speech and music recognition need, nothing more."""

from __future__ import annotations

import subprocess
from pathlib import Path

from shared.errors import ErrorCode, PermanentError
from shared.video.probe import ffmpeg_exe

AUDIO_TIMEOUT_S = 300


def extract_audio(video: Path | str, dest: Path) -> Path:
    """`video`: a path or a URL ffmpeg reads in place."""
    run = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-i", str(video), "-vn", "-sn", "-dn",
         "-ac", "1", "-ar", "16000", "-c:a", "libmp3lame", "-b:a", "32k", "-f", "mp3", str(dest)],
        capture_output=True, text=True, errors="replace", timeout=AUDIO_TIMEOUT_S,
    )
    if run.returncode != 0 or not dest.exists():
        raise PermanentError("audio track could not be decoded",
                             error_code=ErrorCode.VIDEO_UNREADABLE)
    return dest
