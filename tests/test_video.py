"""Download, probe and the LocalTagger on generated videos."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from shared.errors import PermanentError, TransientError
from shared.tagging.base import TagRequest
from shared.tagging.local import LocalTagger
from shared.video.fetch import FetchLimits, download
from shared.video.probe import parse_ffmpeg_header, probe, sniff_container
from shared.video.safety import UrlPolicy

LIMITS = FetchLimits(max_bytes=50 * 1024 * 1024, connect_timeout_s=2, read_timeout_s=2)
OPEN = UrlPolicy(allow_private=True)  # the media server is on 127.0.0.1


def test_download_hashes_while_streaming(media_server, media_dir: Path, tmp_path: Path) -> None:
    got = download(media_server.url("chunked/clip.mp4"), tmp_path / "v", LIMITS, OPEN)
    data = (media_dir / "clip.mp4").read_bytes()
    assert got.size_bytes == len(data) and got.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(("path", "error", "code"), [
    ("status/404", PermanentError, "download_failed"),
    ("status/403", PermanentError, "download_failed"),
    ("status/500", TransientError, "download_unavailable"),
    ("status/429", TransientError, "download_unavailable"),
    ("lying-length/clip.mp4", PermanentError, "video_too_large"),
    ("slow/5/clip.mp4", TransientError, "download_unavailable"),
])
def test_download_errors_are_classified(media_server, tmp_path: Path, path, error, code) -> None:
    with pytest.raises(error) as caught:
        download(media_server.url(path), tmp_path / "v", LIMITS, OPEN)
    assert caught.value.error_code == code
    assert not (tmp_path / "v").exists()


def test_download_stops_at_limit_without_content_length(media_server, tmp_path: Path) -> None:
    with pytest.raises(PermanentError) as caught:
        download(media_server.url("chunked/clip.mp4"), tmp_path / "v",
                 FetchLimits(max_bytes=1000), OPEN)
    assert caught.value.error_code == "video_too_large" and not (tmp_path / "v").exists()


def test_probe_reads_streams(media_dir: Path) -> None:
    info = probe(media_dir / "clip.mp4")
    assert (info.container, info.width, info.height, info.fps) == ("mp4", 320, 240, 25.0)
    assert info.video_codec == "h264" and info.audio_codec == "aac" and info.duration_s == 2.0
    silent = probe(media_dir / "portrait.mp4")
    assert not silent.has_audio and silent.orientation == "portrait"


def test_probe_applies_rotation(media_dir: Path, tmp_path: Path) -> None:
    import subprocess

    from shared.video.probe import ffmpeg_exe

    rotated = tmp_path / "rotated.mp4"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", "90",
                    "-i", str(media_dir / "clip.mp4"), "-c", "copy", str(rotated)], check=True)
    info = probe(rotated)
    assert (info.rotation, info.width, info.height, info.orientation) == (
        90, 240, 320, "portrait")


def test_probe_refuses_non_video_and_broken_files(media_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PermanentError) as caught:
        probe(media_dir / "notes.txt")
    assert caught.value.error_code == "unsupported_format"
    broken = tmp_path / "broken.mp4"
    broken.write_bytes((media_dir / "clip.mp4").read_bytes()[:64] + b"\0" * 4096)
    with pytest.raises(PermanentError) as caught:
        probe(broken)
    assert caught.value.error_code == "video_unreadable"


def test_other_containers_are_sniffed() -> None:
    assert sniff_container(b"\x00\x00\x00\x14ftypqt  ") == "mov"
    assert sniff_container(b"\x00\x00\x00\x14ftyp3gp4") == "3gp"
    assert sniff_container(b"\x1a\x45\xdf\xa3rest") == "webm"
    assert sniff_container(b"FLV\x01") == "flv"
    assert sniff_container(b"RIFF\0\0\0\0AVI LIST") == "avi"
    assert sniff_container(b"RIFF\0\0\0\0WAVEfmt ") == "wav"
    assert sniff_container(b"<html>") is None


def test_parse_header_tolerates_missing_parts() -> None:
    assert parse_ffmpeg_header("garbage", "mp4") is None
    info = parse_ffmpeg_header("Input #0, wav, from 'x':\n  Duration: 00:01:02.50, "
                               "bitrate: 64 kb/s\n  Stream #0:0: Audio: pcm_s16le, 8000 Hz", "wav")
    assert info.duration_s == 62.5 and info.has_audio and not info.has_video


def test_local_tagger_only_requested_dimensions(media_dir: Path) -> None:
    media = probe(media_dir / "clip.mp4")
    result = LocalTagger().tag(TagRequest(media_dir / "clip.mp4", media, ["content"], "zh"))
    assert set(result.dimensions) == {"content"}
    assert set(result.dimensions["content"]) == {"theme", "narrative", "emotion", "on_screen_text"}
    assert result.tags == ["短视频(≤15秒)"]
    assert result.technical.has_audio and result.provider == "local"


@pytest.mark.parametrize(("source", "language", "expected"), [
    ("color=c=red", "zh", {"红色调", "静态画面"}),
    ("color=c=black", "zh", {"暗调画面", "黑色调"}),
    ("color=c=white", "en", {"bright", "white tones"}),
])
def test_local_tagger_measures_colour_and_light(tmp_path: Path, source, language,
                                                expected) -> None:
    from scripts.sample_video import make_video
    from shared.video.frames import extract_frames

    video = make_video(tmp_path / "v.mp4", seconds=8, size="320x240", source=source)
    media = probe(video)
    frames = extract_frames(video, tmp_path / "frames", media.duration_s)
    result = LocalTagger().tag(TagRequest(video, media, ["vision", "content"], language,
                                          tuple(frames.frames), frames.scene_changes))
    assert expected <= set(result.tags), result.tags
    assert result.summary and result.model == "local-visual-v1"
