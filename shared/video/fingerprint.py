"""A video's fingerprint (issue 40): what lets a re-upload (re-encoded, resized, cropped,
letterboxed, watermarked, trimmed) be recognised as the same video.

The frames come from the decode the key frames make anyway (`frames.Tap`): where that
decodes every frame, small grey frames at a low fixed rate (each the frame shown at its
time); where it decodes the key frames only, every key frame at its own time (times
stored with the hashes) — the same ffmpeg process also writes the audio as 8 kHz mono,
so the fingerprint costs no decode of its own (a video with fewer than MIN_KEYFRAMES key
frames gets one: `Pending`). Each frame is cropped to the picture's content box (the
area that is ever lit: black bars go), shrunk to 32×32 and hashed by the signs of its
low DCT frequencies against their median (a perceptual hash: scale, bitrate, a small
crop or a corner logo move few bits). The audio gets 15 bits per 100 ms: the signs of
the band-energy differences across time and frequency. A black screen or a still image
has no fingerprint: nothing in it tells two such videos apart.
"""

from __future__ import annotations

import io
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.video.frames import Tap
from shared.video.probe import MediaInfo, ffmpeg_exe

SAMPLE_FPS = 2.0
"""Frames per second hashed (videos up to MAX_SAMPLES / SAMPLE_FPS seconds)."""
MAX_SAMPLES = 600
"""Longer videos are sampled evenly, MAX_SAMPLES frames in all."""
MIN_SAMPLES = 40
"""Short videos are sampled faster (up to MAX_SAMPLE_FPS) so that they get this many
frames: a key frame of another encode then has a frame of this one within 0.1 s."""
MAX_SAMPLE_FPS = 5.0
GRID = 128
"""Side the frames are decoded at (grey): enough to find the content box and hash it."""
HASH_SIDE = 32
BLACK_LEVEL = 48
"""A row or column never brighter than this (0-255) over the whole video is a bar."""
FLAT_STD = 6.0
"""A 32×32 frame with less contrast than this is flat (black, a fade): not hashed."""
MIN_LIVELY_FRAMES = 3
"""Fewer changes of picture than this (`changes`): a still (no fingerprint)."""
AUDIO_RATE = 8000
AUDIO_HOP = 800
"""Samples per audio step (100 ms)."""
AUDIO_SECONDS = 6
"""Only the first seconds of sound are fingerprinted: decoding all of a long video's sound
costs half again the key frames' decode, and the pictures judge the whole anyway (the
sound settles the offset and tells apart two videos that share pictures). 6 s, not 10:
the AAC decode of 10 s was most of what the fingerprint added to a 60 s video's intake,
and 6 s still overlap 3 s at the largest trim (fingerprints stored with more compare
on their overlap)."""
AUDIO_BANDS = np.geomspace(150, 3800, 17)
SILENT_RMS = 30.0
AUDIO_FLOOR = 1e-3
"""Band energies under this share of a typical step's loudest band count as silence."""
AUDIO_DEAD_ZONE = 0.1
"""Differences under 1 dB give bit 0: noise does not flip them from one encode to another."""
MIN_KEYFRAMES = MIN_LIVELY_FRAMES + 1
"""Fewer key frames than this cannot show the picture changing: the fingerprint then
decodes every frame itself."""
KEYFRAMES_FOR_STILL = 10
"""Key frames show a change but few of them do not prove a still (slow motion between
distant key frames): with fewer than this and no change seen, the fingerprint decodes
every frame itself before calling the video a still."""
KEYFRAME_TOLERANCE_S = 0.1
"""How far apart (after the offset) a key frame and another video's frame may be shown
and still be compared: key frames of two encodes coincide at cuts and shared GOPs."""
FINGERPRINT_TIMEOUT_S = 300
_DCT = np.sqrt(2 / HASH_SIDE) * np.cos(
    np.pi * (2 * np.arange(HASH_SIDE)[None, :] + 1) * np.arange(HASH_SIDE)[:, None]
    / (2 * HASH_SIDE))
_DCT[0] /= np.sqrt(2)
CORNER_W, CORNER_H = 9, 6
"""Cells (of 32) of each corner left out of the hash, 28 % of the width by 19 % of the
height: a logo or watermark there changes nothing."""
_CORNERS = np.zeros((HASH_SIDE, HASH_SIDE), dtype=bool)
for _rows in (slice(0, CORNER_H), slice(HASH_SIDE - CORNER_H, HASH_SIDE)):
    for _cols in (slice(0, CORNER_W), slice(HASH_SIDE - CORNER_W, HASH_SIDE)):
        _CORNERS[_rows, _cols] = True


@dataclass(frozen=True)
class Fingerprint:
    """Hashes of frames at `times` (0 where the frame was flat, `flat` true), the
    audio's codes per 100 ms (None: no audio or silence), the duration, and the content
    box's width in the video's pixels (how big the picture really is: the scale).
    `times` None: the frames are every 1/`fps` s from 0 (a full decode, and every
    fingerprint stored before key frames fed it); else the key frames' own times (`fps`
    their mean rate)."""

    duration_s: float
    fps: float
    hashes: np.ndarray
    flat: np.ndarray
    audio: np.ndarray | None
    content_width: float
    times: np.ndarray | None = None
    start_s: float = 0.0
    """When the first fixed-rate frame is shown. 0 since the `fps` filter rounds up (the
    frame shown at each time); fingerprints stored before that hold, at each time, the
    frame shown about half a step later (the filter's default rounding keeps the last
    frame of each step): `from_bytes` gives them 0.5/fps."""

    @property
    def sample_times(self) -> np.ndarray:
        if self.times is not None:
            return self.times
        return self.start_s + np.arange(len(self.hashes)) / self.fps

    @property
    def tolerance_s(self) -> float:
        """How far from a wanted time this fingerprint's nearest frame may be."""
        return KEYFRAME_TOLERANCE_S if self.times is not None else 0.5 / self.fps

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        arrays = {"hashes": self.hashes, "flat": self.flat,
                  "meta": np.array([self.duration_s, self.fps, self.content_width,
                                    self.start_s])}
        if self.audio is not None:
            arrays["audio"] = self.audio
        if self.times is not None:
            arrays["times"] = self.times
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        with np.load(io.BytesIO(data), allow_pickle=False) as saved:
            meta = [float(value) for value in saved["meta"]]
            duration, fps, width = meta[:3]
            start = meta[3] if len(meta) > 3 else 0.5 / fps  # stored before `round=up`
            audio = saved["audio"] if "audio" in saved.files else None
            times = saved["times"] if "times" in saved.files else None
            return cls(duration, fps, saved["hashes"], saved["flat"], audio, width, times,
                       start)


@dataclass(frozen=True)
class Outcome:
    """A fingerprint, or why there is none (said in the result's warnings)."""

    fingerprint: Fingerprint | None
    problem: str | None = None
    decode: bool = False
    """True: too few key frames to take it from: decode the video for it (`start`)."""


def tap(folder: Path, media: MediaInfo) -> Tap:
    """What the key frames' decode writes for the fingerprint: from a full decode, frames
    at the fixed rate; from the key frames, every key frame (no closer than the fixed
    rate's spacing, so an all-intra video does not flood it); and the sound."""
    folder.mkdir(parents=True, exist_ok=True)
    audio = (("-map", "0:a:0", "-t", str(AUDIO_SECONDS), "-ac", "1", "-ar", str(AUDIO_RATE),
              "-f", "s16le", str(folder / "fp.pcm")) if media.has_audio else ())
    rate = sample_rate(media.duration_s)
    small = f"scale={GRID}:{GRID},format=gray"
    spaced = f"select='isnan(prev_selected_t)+gte(t-prev_selected_t,{0.99 / rate:.4f})'"
    return Tap(f"fps={rate:.6f}:round=up,{small}", folder / "fp.gray", audio,
               keyframe_filter=f"{spaced},{small}")


def read(decoded: Tap, media: MediaInfo, keyframes: bool = False) -> Outcome:
    """The fingerprint of what a decode wrote (`keyframes`: the key-frame run's)."""
    if not decoded.frames_path.exists():
        return Outcome(None, "no fingerprint: the video could not be decoded; never reused")
    frames = np.fromfile(decoded.frames_path, dtype=np.uint8)
    frames = frames[: frames.size // (GRID * GRID) * GRID * GRID].reshape(-1, GRID, GRID)
    audio_path = Path(decoded.audio_output[-1]) if decoded.audio_output else None
    audio = (np.fromfile(audio_path, dtype="<i2")
             if audio_path is not None and audio_path.exists() else None)
    if not keyframes:
        return compute(frames, audio, media.duration_s, sample_rate(media.duration_s),
                       media.width or GRID)
    text = decoded.times_path.read_text() if decoded.times_path.exists() else ""
    times = np.array([max(0.0, float(t)) for t in re.findall(r"pts_time:(-?[\d.]+)", text)])
    if len(times) != len(frames) or len(times) < MIN_KEYFRAMES:
        return Outcome(None, "too few key frames for the fingerprint", decode=True)
    outcome = compute(frames, audio, media.duration_s,
                      len(times) / max(media.duration_s, 0.001), media.width or GRID, times)
    if outcome.fingerprint is None and len(times) < KEYFRAMES_FOR_STILL:
        return Outcome(None, outcome.problem, decode=True)
    return outcome


class Pending:
    """An ffmpeg process of its own decoding for the fingerprint (too few key frames),
    running beside other work. It decodes as the key frames' run does (deblocking on):
    skipping it saved 15 % but moved detailed pictures' hashes away from those of a tap."""

    def __init__(self, video: Path | str, folder: Path, media: MediaInfo) -> None:
        self.media, self.tap = media, tap(folder, media)
        command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                   "-i", str(video), "-map", "0:v:0",
                   "-vf", self.tap.video_filter, "-f", "rawvideo", str(self.tap.frames_path),
                   *self.tap.audio_output]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)

    def finish(self) -> Outcome:
        """The fingerprint once ffmpeg is done (an unreadable video: no fingerprint)."""
        try:
            code = self.process.wait(timeout=FINGERPRINT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.stop()
            return Outcome(None, "no fingerprint: decoding took too long; never reused")
        if code != 0:
            return Outcome(None, "no fingerprint: the video could not be decoded; never reused")
        return read(self.tap, self.media)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def start(video: Path | str, folder: Path, media: MediaInfo) -> Pending:
    return Pending(video, folder, media)


def sample_rate(duration_s: float) -> float:
    duration_s = max(duration_s, 0.001)
    return min(max(SAMPLE_FPS, min(MAX_SAMPLE_FPS, MIN_SAMPLES / duration_s)),
               MAX_SAMPLES / duration_s)


def compute(frames: np.ndarray, audio: np.ndarray | None, duration_s: float, fps: float,
            width_px: int, times: np.ndarray | None = None) -> Outcome:
    """The fingerprint of decoded grey frames (n × GRID × GRID, every 1/`fps` s or at
    `times`) and 8 kHz audio."""
    box = content_box(frames)
    if box is None:
        return Outcome(None, "no fingerprint: the picture is black; never reused")
    top, bottom, left, right = box
    small = shrink(frames[:, top:bottom, left:right].astype(np.float32))
    flat = small.std(axis=(1, 2)) < FLAT_STD
    hashes = np.where(flat, np.uint64(0), phash(small))
    if np.count_nonzero(~flat) < MIN_LIVELY_FRAMES or changes(hashes[~flat]) < MIN_LIVELY_FRAMES:
        return Outcome(None, "no fingerprint: the picture does not change (a still image "
                             "or a black screen); never reused")
    return Outcome(Fingerprint(duration_s, fps, hashes, flat, audio_codes(audio),
                               width_px * (right - left) / GRID, times))


def changes(hashes: np.ndarray) -> int:
    """Frames whose picture moved more than 6 bits from the last one that did (slow
    motion adds up; a still image's re-encoding noise does not)."""
    count, reference = 0, hashes[0] if len(hashes) else 0
    for value in hashes[1:]:
        if int(np.bitwise_count(value ^ reference)) > 6:
            count, reference = count + 1, value
    return count


def content_box(frames: np.ndarray) -> tuple[int, int, int, int] | None:
    """Rows and columns ever brighter than a bar: (top, bottom, left, right). Bars come
    in pairs (letterbox, pillarbox): each pair is cut to the thinner of its two, so a
    picture dark along one edge keeps it, whether a few frames (key frames) or many
    (every frame) were seen."""
    if not len(frames):
        return None
    brightest = frames.max(axis=0)
    rows = np.flatnonzero(brightest.max(axis=1) > BLACK_LEVEL)
    cols = np.flatnonzero(brightest.max(axis=0) > BLACK_LEVEL)
    if len(rows) < 8 or len(cols) < 8:
        return None
    bar_rows = min(int(rows[0]), GRID - 1 - int(rows[-1]))
    bar_cols = min(int(cols[0]), GRID - 1 - int(cols[-1]))
    return bar_rows, GRID - bar_rows, bar_cols, GRID - bar_cols


def _area_matrix(size: int, out: int) -> np.ndarray:
    """out × size weights averaging each output cell's share of the input."""
    edges = np.linspace(0, size, out + 1)
    left, right = edges[:-1, None], edges[1:, None]
    cells = np.arange(size)[None, :]
    overlap = np.clip(np.minimum(right, cells + 1) - np.maximum(left, cells), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def shrink(frames: np.ndarray) -> np.ndarray:
    """Each frame area-averaged to HASH_SIDE × HASH_SIDE."""
    return _sandwich(_area_matrix(frames.shape[1], HASH_SIDE).astype(np.float32), frames,
                     _area_matrix(frames.shape[2], HASH_SIDE).astype(np.float32))


def _sandwich(left: np.ndarray, stack: np.ndarray, right: np.ndarray) -> np.ndarray:
    """left @ frame @ right.T for every frame, as two products over the whole stack: a
    product per frame costs OpenBLAS's threads a wake-up each (10-100× the CPU time on
    a busy machine)."""
    count, height, width = stack.shape
    half = stack.reshape(count * height, width) @ right.T
    half = half.reshape(count, height, -1).transpose(0, 2, 1).reshape(-1, height)
    return (half @ left.T).reshape(count, right.shape[0], left.shape[0]).transpose(0, 2, 1)


def phash(small: np.ndarray) -> np.ndarray:
    """63 bits per frame: the 8×8 lowest DCT frequencies but the mean, above their median.
    The corners (where logos and watermarks go) are set to the frame's mean first."""
    small = small - small.mean(axis=(1, 2), keepdims=True)
    small[:, _CORNERS] = 0
    coefficients = _sandwich(_DCT, small, _DCT)[:, :8, :8].reshape(len(small), 64)[:, 1:]
    bits = coefficients > np.median(coefficients, axis=1, keepdims=True)
    weights = np.left_shift(np.uint64(1), np.arange(63, dtype=np.uint64))
    return (bits.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


def audio_codes(samples: np.ndarray | None) -> np.ndarray | None:
    """15 bits per 100 ms of the first AUDIO_SECONDS (uint16), None for no audio or
    silence."""
    if samples is None or len(samples) < AUDIO_HOP * 4:
        return None
    samples = samples[: AUDIO_SECONDS * AUDIO_RATE]
    steps = len(samples) // AUDIO_HOP
    framed = samples[: steps * AUDIO_HOP].astype(np.float32).reshape(steps, AUDIO_HOP)
    if np.sqrt((framed ** 2).mean(axis=1)).mean() < SILENT_RMS:
        return None
    spectrum = np.abs(np.fft.rfft(framed * np.hanning(AUDIO_HOP), axis=1)) ** 2
    freqs = np.fft.rfftfreq(AUDIO_HOP, 1 / AUDIO_RATE)
    band = np.searchsorted(AUDIO_BANDS, freqs) - 1
    energy = np.stack([spectrum[:, band == b].sum(axis=1) for b in range(16)], axis=1)
    floor = max(float(np.median(energy.max(axis=1))) * AUDIO_FLOOR, 1e-9)
    level = np.log10(np.maximum(energy, floor))  # bands below the floor are equal: bit 0
    across = level[:, :-1] - level[:, 1:]
    bits = (across[1:] - across[:-1]) > AUDIO_DEAD_ZONE
    weights = np.left_shift(np.uint16(1), np.arange(15, dtype=np.uint16))
    return (bits.astype(np.uint16) * weights).sum(axis=1, dtype=np.uint16)
