"""Probe a media file with the ffmpeg binary of imageio-ffmpeg (there is no ffprobe).

One ffmpeg run reads the container header and decodes the first video frame, so a file
that only looks like a video is caught here. The container is sniffed from magic bytes,
never trusted from the URL extension or the Content-Type.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from shared.errors import ErrorCode, PermanentError
from shared.video.source import VideoSource, source_of

PROBE_TIMEOUT_S = 60
"""ffmpeg reads a header and one frame; a minute means the file is pathological."""


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class MediaInfo:
    container: str
    duration_s: float
    width: int | None
    height: int | None
    fps: float | None
    video_codec: str | None
    audio_codec: str | None
    rotation: int
    bitrate_kbps: int | None

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    @property
    def orientation(self) -> str | None:
        if not self.width or not self.height:
            return None
        if self.width == self.height:
            return "square"
        return "portrait" if self.height > self.width else "landscape"


def sniff_container(head: bytes) -> str | None:
    """The container named by the first bytes of the file, or None when unknown."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return "mov"
        if brand.startswith(b"3g"):
            return "3gp"
        return "mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free"):
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head.startswith(b"FLV"):
        return "flv"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    return None


def looks_like_html(head: bytes) -> bool:
    """A web page (a share or player page given instead of the video file)."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or (
        text.startswith(b"<") and b"<html" in text)


FFMPEG_DEMUXERS = {
    "mp4": "mov,mp4", "mov": "mov,mp4", "3gp": "mov,mp4", "webm": "matroska,webm",
    "avi": "avi", "flv": "flv", "wav": "wav",
}
"""What ffmpeg must name in `Input #0, <demuxer>` to confirm the sniffed container."""


def probe(video: Path | VideoSource) -> MediaInfo:
    """Read the file's streams; PermanentError when it is not a usable video. A stored
    video is read in place (a signed URL: ffmpeg seeks with range requests)."""
    source = source_of(video)
    head = source.read_head(512)
    container = sniff_container(head[:64])
    if container is None and looks_like_html(head):
        raise PermanentError(
            "unsupported format: the URL gave a web page (HTML), not a video file — use the "
            "address of the video file itself, not of the page that shows it",
            error_code=ErrorCode.UNSUPPORTED_FORMAT,
        )
    if container is None:
        raise PermanentError(
            "unsupported format: not mp4, mov, avi, 3gp, flv, webm or wav",
            error_code=ErrorCode.UNSUPPORTED_FORMAT,
        )
    try:
        run = subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", source.location,
             "-map", "0:v:0?", "-frames:v", "1", "-f", "null", "-"],
            capture_output=True, text=True, errors="replace", timeout=PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise PermanentError(
            "video could not be read in time", error_code=ErrorCode.VIDEO_UNREADABLE
        ) from None
    info = parse_ffmpeg_header(run.stderr, container)
    if info is None or (run.returncode != 0 and info.has_video):
        raise PermanentError("video could not be decoded", error_code=ErrorCode.VIDEO_UNREADABLE)
    demuxer = re.search(r"Input #0, ([\w,]+), from", run.stderr)
    if not demuxer or not demuxer.group(1).startswith(FFMPEG_DEMUXERS[container]):
        raise PermanentError(
            f"file looks like {container} but ffmpeg reads it as "
            f"{demuxer.group(1) if demuxer else 'nothing'}",
            error_code=ErrorCode.UNSUPPORTED_FORMAT,
        )
    if info.has_video and not _decoded_a_frame(run.stderr):
        raise PermanentError("video stream could not be decoded",
                             error_code=ErrorCode.VIDEO_UNREADABLE)
    if not info.has_video and not info.has_audio:
        raise PermanentError("file has no video or audio stream",
                             error_code=ErrorCode.VIDEO_UNREADABLE)
    return info


def _decoded_a_frame(stderr: str) -> bool:
    """ffmpeg's progress line reports `frame=    1` once the first frame was decoded."""
    return re.search(r"frame=\s*[1-9]", stderr) is not None


_DURATION = re.compile(r"Duration: (\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_BITRATE = re.compile(r"bitrate: (\d+) kb/s")
_VIDEO = re.compile(r"Stream #0:\d+.*?: Video: (\w+).*?, (\d{2,5})x(\d{2,5})")
_FPS = re.compile(r"([\d.]+) fps")
_AUDIO = re.compile(r"Stream #0:\d+.*?: Audio: (\w+)")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees", re.IGNORECASE)


def parse_ffmpeg_header(stderr: str, container: str) -> MediaInfo | None:
    """Parse the `Input #0` block that `ffmpeg -i` prints."""
    start = stderr.find("Input #0")
    if start < 0:
        return None
    end = min((i for i in (stderr.find("Stream mapping", start), stderr.find("Output #0", start))
               if i > 0), default=len(stderr))
    header = stderr[start:end]
    duration = _DURATION.search(header)
    bitrate = _BITRATE.search(header)
    video = _VIDEO.search(header)
    audio = _AUDIO.search(header)
    rotation = _ROTATION.search(header)
    width = height = fps = None
    video_codec = None
    if video:
        video_codec, width, height = video.group(1), int(video.group(2)), int(video.group(3))
        line = header[video.start():header.find("\n", video.start())]
        fps_match = _FPS.search(line)
        fps = float(fps_match.group(1)) if fps_match else None
    degrees = int(round(float(rotation.group(1)))) % 360 if rotation else 0
    if degrees in (90, 270) and width and height:
        width, height = height, width
    seconds = 0.0
    if duration:
        hours, minutes, secs = duration.groups()
        seconds = int(hours) * 3600 + int(minutes) * 60 + float(secs)
    return MediaInfo(
        container=container,
        duration_s=round(seconds, 3),
        width=width,
        height=height,
        fps=fps,
        video_codec=video_codec,
        audio_codec=audio.group(1) if audio else None,
        rotation=degrees,
        bitrate_kbps=int(bitrate.group(1)) if bitrate else None,
    )
