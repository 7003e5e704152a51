"""Issue 35: a video's memory and disk do not grow with it. The download streams into
storage (GCS emulator or the local folder) and every later step reads the stored object
in place: ffmpeg over a URL with range requests, the Gemini upload chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.app.tasks import create_task
from shared.errors import TransientError
from shared.pipeline import stages
from shared.pipeline.runner import DeliveryKind, handle_delivery
from shared.services import Services, build_services
from shared.storage import GcsStorage, LocalStorage, Storage
from shared.tasks.models import CreateTaskRequest
from shared.video.fetch import FetchLimits, streaming
from shared.video.frames import extract_frames
from shared.video.probe import probe
from shared.video.safety import UrlPolicy
from shared.video.source import VideoSource


@pytest.fixture(params=["local", "gcs"])
def stored_services(request, redis_client: redis.Redis, make_settings) -> Iterator[Services]:
    """Services on SQLite + real Redis, storing in the local folder or the GCS emulator."""
    if request.param == "gcs":
        request.getfixturevalue("gcs_emulator")
        settings = make_settings(TASK_TIMEOUT_S=30, STORAGE="gcs", GCS_BUCKET="vtt-test")
    else:
        settings = make_settings(TASK_TIMEOUT_S=30)
    built = build_services(settings)
    yield built
    for obj in list(built.storage.list("")):
        built.storage.delete(obj.key)
    built.store.engine.dispose()


def create(services: Services, url: str, **fields) -> str:
    request = CreateTaskRequest.model_validate(
        {"url": url, "platform": "rpa", **fields}, context={"platforms": ["rpa"]})
    return create_task(services, request)[0].task_id


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_the_video_never_lands_in_the_work_folder(stored_services, media_server,
                                                  media_dir, monkeypatch) -> None:
    """After each stage the work folder holds at most the key frames (and the fingerprint's
    small grey frames, issue 40), and ffmpeg was
    given the stored object (a URL on GCS), not a local copy."""
    seen: dict[str, int] = {}
    locations: list[str] = []
    wrapped = []
    for name, stage in stages.STAGES:
        def spy(job, stage=stage, name=name):
            stage(job)
            seen[name] = (folder_bytes(job.workdir) - folder_bytes(job.workdir / "frames")
                          - folder_bytes(job.workdir / "fingerprint"))  # ≤ 600 tiny frames
            if job.source is not None:
                locations.append(job.source.location)
        wrapped.append((name, spy))
    monkeypatch.setattr(stages, "STAGES", wrapped)
    task_id = create(stored_services, media_server.url("files/clip.mp4"))
    reply = handle_delivery(task_id, stored_services.worker)
    task = stored_services.store.get(task_id)
    assert (reply.kind, task.status) == (DeliveryKind.DONE, "completed"), task.message
    assert seen and set(seen.values()) == {0}
    storage = stored_services.storage
    key = storage.key_of(task.storage_uri)
    assert key is not None and storage.size_of(key) == (media_dir / "clip.mp4").stat().st_size
    assert task.video_sha256 == stages.hashed(storage, key).sha256
    if isinstance(storage, GcsStorage):
        assert locations[0].startswith("http://127.0.0.1:")  # read in place, by URL
    else:
        assert Path(locations[0]) == storage.root / key


def test_a_source_that_stops_midway_stores_nothing_and_is_retried(
        stored_services, media_server) -> None:
    task_id = create(stored_services, media_server.url("cut/clip.mp4"))
    reply = handle_delivery(task_id, stored_services.worker)
    task = stored_services.store.get(task_id)
    assert reply.kind == DeliveryKind.DONE and reply.retry_after_s >= 1
    assert (task.status, task.attempts, task.error_code) == ("pending", 1,
                                                             "download_unavailable")
    assert task.storage_uri is None
    assert list(stored_services.storage.list("")) == []


def test_put_stream_keeps_nothing_when_the_chunks_fail(storage: Storage) -> None:
    def chunks():
        yield b"x" * (9 * 1024 * 1024)  # over one 8 MB upload chunk: a session is open
        raise TransientError("source went away")

    with pytest.raises(TransientError):
        storage.put_stream("videos/a/source.mp4", chunks(), "video/mp4")
    assert list(storage.list("")) == [] and storage.size_of("videos/a/source.mp4") is None
    uri = storage.put_stream("videos/a/source.mp4", iter([b"ab", b"cd"]), "video/mp4")
    assert storage.key_of(uri) == "videos/a/source.mp4"
    with storage.open_read("videos/a/source.mp4") as handle:
        assert handle.read() == b"abcd"


def test_streaming_reports_a_cut_source_as_transient(media_server) -> None:
    limits = FetchLimits(max_bytes=10 * 1024 * 1024)
    with streaming(media_server.url("cut/clip.mp4"), limits,
                   UrlPolicy(allow_private=True)) as incoming:
        with pytest.raises(TransientError) as caught:
            for _ in incoming.chunks():
                pass
    assert caught.value.error_code == "download_unavailable"


def moov_after_mdat(data: bytes) -> bool:
    return data.find(b"moov") > data.find(b"mdat") > 0


def test_moov_at_the_end_is_probed_and_framed_in_place(storage: Storage, media_dir,
                                                       tmp_path: Path) -> None:
    """ffmpeg writes the moov atom after the media unless told otherwise: reading it means
    seeking to the end first (range requests on GCS)."""
    data = (media_dir / "clip.mp4").read_bytes()
    assert moov_after_mdat(data)
    key = "videos/2026/12/07/t/source.mp4"
    storage.put_stream(key, iter([data[i:i + 4096] for i in range(0, len(data), 4096)]))
    source = VideoSource(storage.media_url(key), len(data), lambda: storage.open_read(key))
    media = probe(source)
    assert (media.container, media.width, media.duration_s) == ("mp4", 320, 2.0)
    frames = extract_frames(source.location, tmp_path / "frames", media.duration_s)
    assert frames.frames and all(f.path.stat().st_size > 0 for f in frames.frames)
    if isinstance(storage, LocalStorage):
        assert source.local_path == storage.root / key


def test_the_gemini_upload_reads_the_stored_object_in_chunks(
        storage: Storage, media_dir, redis_client, standin, monkeypatch) -> None:
    """Over INLINE_MAX_MB the Files API upload is fed from the stored object's reader,
    never a local file: the bytes Gemini received are the object's."""
    from shared.accounts.importer import AccountEntry, import_accounts
    from shared.accounts.pool import AccountPool
    from shared.config import load_settings
    from shared.services import gemini_config
    from shared.tagging.base import TagRequest
    from shared.tagging.gemini import GeminiTagger

    import_accounts(redis_client, [AccountEntry(
        api_key="AIzaSyLARGE" + "0" * 29, daily_limit=100, minute_limit=10, username="u",
        password="pw", phone="", email="")])
    settings = load_settings(GEMINI_BASE_URL=standin.base_url, TAGGER="gemini",
                             INLINE_MAX_MB=0.01)
    tagger = GeminiTagger(AccountPool(redis_client), gemini_config(settings),
                          sleep=lambda s: None)
    data = (media_dir / "clip.mp4").read_bytes()
    key = "videos/2026/12/07/g/source.mp4"
    storage.put_stream(key, iter([data]))
    reads: list[int] = []

    def opener():
        handle = storage.open_read(key)
        original = handle.read

        def read(size=-1):
            reads.append(size)
            return original(size)
        monkeypatch.setattr(handle, "read", read, raising=False)
        return handle

    source = VideoSource(storage.media_url(key), len(data), opener)
    result = tagger.tag(TagRequest(source, probe(source), ["vision"], "zh"))
    assert result.tags
    uploaded = [f for f in standin.files.values() if f["bytes"]]
    assert [bytes(f["data"]) for f in uploaded] == [data]
    assert reads and all(0 < size <= 8 * 1024 * 1024 for size in reads)


def test_signed_urls_are_v4_signed_outside_the_emulator(monkeypatch) -> None:
    """The production branch of `signed_url`: a service account's key signs locally (on
    Cloud Functions the metadata credentials sign through IAM, not testable here)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.cloud import storage as gcs
    from google.oauth2 import service_account

    from shared.storage import signed_url

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    credentials = service_account.Credentials.from_service_account_info({
        "type": "service_account", "client_email": "vtt@example.iam.gserviceaccount.com",
        "private_key": pem, "token_uri": "https://oauth2.googleapis.com/token",
        "project_id": "p"})
    client = gcs.Client(project="p", credentials=credentials)
    url = signed_url(client, client.bucket("b").blob("videos/x/source.mp4"), "GET")
    assert url.startswith("https://storage.googleapis.com/b/videos/x/source.mp4?")
    assert "X-Goog-Algorithm=GOOG4-RSA-SHA256" in url and "X-Goog-Signature=" in url
