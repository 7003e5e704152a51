"""What the model sees of the video: its bytes inline when the request stays under
INLINE_MAX_MB, else a Files API upload made with the call's own key (a file belongs to
its key's project), cut to a window with videoMetadata offsets; or, with TAG_INPUT=frames,
the key frames and the audio track."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from google import genai
from google.genai import types

from shared.accounts.pool import Lease
from shared.errors import ErrorCode, PermanentError, TransientError
from shared.tagging.base import TagRequest
from shared.tagging.gemini.wire import Clients
from shared.tagging.prompting import mmss
from shared.video.audio import extract_audio

log = logging.getLogger("vision_to_tag.gemini")

MIME_TYPES = {
    "mp4": "video/mp4", "mov": "video/mov", "avi": "video/avi", "flv": "video/x-flv",
    "webm": "video/webm", "3gp": "video/3gpp", "wav": "audio/wav",
}
FILE_POLL_S = 1.0

Uploads = dict
"""(key id, endpoint) → (uploaded file, lease, parts): a long video's parts share an
upload per key; deleted when the last part is in."""


class Media:
    """The video parts of a call, and the uploads they need."""

    def __init__(self, clients: Clients, inline_max_mb: float, file_timeout_s: float,
                 sleep: Callable[[float], None]) -> None:
        self.clients = clients
        self.inline_max_mb = inline_max_mb
        self.file_timeout_s = file_timeout_s
        self.sleep = sleep

    def video_parts(self, request: TagRequest, lease: Lease, endpoint: str):
        """Inline bytes when the request fits INLINE_MAX_MB, else the Files API."""
        mime = MIME_TYPES.get(request.media.container, "video/mp4")
        source = request.source
        if source.size_bytes * 4 / 3 + 64 * 1024 <= self.inline_max_mb * 1024 * 1024:
            with source.open() as handle:  # bounded by INLINE_MAX_MB
                return [types.Part.from_bytes(data=handle.read(), mime_type=mime)], None
        client = self.clients.for_files(lease, endpoint)
        with source.open() as handle:  # the SDK sends it in 8 MB chunks: read in place
            uploaded = client.files.upload(file=handle,
                                           config=types.UploadFileConfig(mime_type=mime))
        try:
            active = self._wait_active(client, uploaded)
        except BaseException:
            self.delete(uploaded, lease, endpoint)
            raise
        return [types.Part.from_uri(file_uri=active.uri, mime_type=active.mime_type or mime)], \
            uploaded

    def shared_video_parts(self, request: TagRequest, lease: Lease, endpoint: str,
                           clip: tuple[float, float] | None, uploads: Uploads | None
                           ) -> tuple[list[types.Part], types.File | None]:
        """The video parts of this call: cut to `clip` with videoMetadata offsets, and an
        upload kept in `uploads` for the next part with the same key (returned as None: not
        this call's to delete)."""
        if uploads is None:
            return self.video_parts(request, lease, endpoint)
        slot = (lease.key_id, endpoint)
        if slot in uploads:
            parts = uploads[slot][2]
        else:
            parts, uploaded = self.video_parts(request, lease, endpoint)
            if uploaded is not None:
                uploads[slot] = (uploaded, lease, parts)
        start, end = clip or (0.0, request.media.duration_s)
        cut = types.VideoMetadata(start_offset=f"{start:g}s", end_offset=f"{end:g}s")
        return [part.model_copy(update={"video_metadata": cut}) for part in parts], None

    def delete(self, uploaded: types.File, lease: Lease, endpoint: str) -> None:
        try:
            client = self.clients.for_files(lease, endpoint)  # held: see wire.Clients
            client.files.delete(name=uploaded.name)
        except Exception as error:  # files expire after 48 h anyway
            log.warning("could not delete Gemini file %s: %s", uploaded.name,
                        type(error).__name__)

    def _wait_active(self, client: genai.Client, uploaded: types.File) -> types.File:
        deadline = time.monotonic() + self.file_timeout_s
        current = uploaded
        while current.state != types.FileState.ACTIVE:
            if current.state == types.FileState.FAILED:
                raise PermanentError("Gemini could not process the video file",
                                     error_code=ErrorCode.GEMINI_FILE_FAILED)
            if time.monotonic() > deadline:
                raise TransientError("Gemini file processing took too long",
                                     error_code=ErrorCode.GEMINI_FILE_TIMEOUT)
            self.sleep(FILE_POLL_S)
            current = client.files.get(name=uploaded.name)
        return current


def frames_parts(request: TagRequest) -> list[types.Part]:
    """Key frames, each after its MM:SS, then the audio track (TAG_INPUT=frames)."""
    parts: list[types.Part] = []
    for frame in request.frames:
        parts.append(types.Part.from_text(text=f"[{mmss(frame.t_s)}]"))
        parts.append(types.Part.from_bytes(data=Path(frame.path).read_bytes(),
                                           mime_type="image/jpeg"))
    if request.media.has_audio:
        with tempfile.TemporaryDirectory(prefix="vtt-audio-", dir=request.workdir) as folder:
            audio = extract_audio(request.source.location, Path(folder) / "audio_track.mp3")
            parts.append(types.Part.from_bytes(data=audio.read_bytes(),
                                               mime_type="audio/mp3"))
    return parts
