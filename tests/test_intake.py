"""Video intake end to end through the worker: every bad input fails at once with its own
`error_code` (or is refused at create), nothing is left behind, good odd files work."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import functions_framework
import pytest

from shared.app.tasks import create_task
from shared.pipeline.runner import DeliveryKind, handle_delivery
from shared.services import Services
from shared.tasks.models import CreateTaskRequest
from shared.video.safety import UrlPolicy
from tests.helpers import queued_ids


def run(services: Services, url: str, **fields):
    request = CreateTaskRequest.model_validate(
        {"url": url, "platform": "rpa", **fields}, context={"platforms": ["rpa"]})
    task_id = create_task(services, request)[0].task_id
    reply = handle_delivery(task_id, services.worker)
    return reply, services.store.get(task_id)


def stored_files(services: Services) -> list[str]:
    return [o.key for o in services.storage.list("videos/")]


@pytest.mark.parametrize(("path", "code"), [
    ("as/video%2Fmp4/page.html", "unsupported_format"),
    ("as/video%2Fmp4/image.png", "unsupported_format"),
    ("files/song.mp4", "unsupported_format"),
    ("files/empty.mp4", "video_unreadable"),
    ("files/truncated.mp4", "video_unreadable"),
    ("files/audio_only.mp4", "no_video_stream"),
    ("files/big.mp4", "video_too_large"),
    ("chunked/big.mp4", "video_too_large"),
    ("files/long.mp4", "video_too_long"),
    ("redirect-loop", "download_failed"),
    ("redirect/6/clip.mp4", "download_failed"),
    ("status/404", "download_failed"),
])
def test_bad_inputs_fail_at_once(sqlite_services: Services, media_server, path, code) -> None:
    sqlite_services.settings.MAX_VIDEO_MB = 50  # small limits: small test files pass them
    sqlite_services.settings.MAX_VIDEO_SECONDS = 600
    reply, task = run(sqlite_services, media_server.url(path))
    assert (reply.kind, task.status, task.error_code, task.attempts) == (
        DeliveryKind.DONE, "failed", code, 1), task.message
    assert task.message and task.result is None
    assert not any("frames/" in key for key in stored_files(sqlite_services))


def test_a_web_page_instead_of_a_video_is_said_to_be_one(sqlite_services: Services,
                                                        media_server) -> None:
    _, page = run(sqlite_services, media_server.url("as/video%2Fmp4/page.html"))
    assert page.error_code == "unsupported_format" and "web page (HTML)" in page.message
    _, image = run(sqlite_services, media_server.url("as/video%2Fmp4/image.png"))
    assert "web page" not in image.message and "not mp4" in image.message


def test_wav_runs_only_the_audio_dimension(sqlite_services: Services, media_server) -> None:
    reply, task = run(sqlite_services, media_server.url("files/voice.wav"))
    assert task.status == "completed", task.message
    assert set(task.result.dimensions) == {"audio"} and task.result.frames == []
    assert "纯音频" in task.result.tags
    _, vision_only = run(sqlite_services, media_server.url("files/voice.wav"),
                         dimensions=["vision"])
    assert vision_only.error_code == "no_video_stream"


def test_phone_video_rotated_90_is_portrait(sqlite_services: Services, media_server) -> None:
    _, task = run(sqlite_services, media_server.url("files/phone.mp4"))
    technical = task.result.technical
    assert (technical.width, technical.height, technical.orientation, technical.rotation) == (
        240, 320, "portrait", 90)
    assert "竖屏" in task.result.tags


def test_redirects_are_followed_up_to_five(sqlite_services: Services, media_server) -> None:
    _, task = run(sqlite_services, media_server.url("redirect/5/clip.mp4"))
    assert task.status == "completed"


def test_drip_feed_hits_the_total_deadline(sqlite_services: Services, media_server) -> None:
    sqlite_services.settings.DOWNLOAD_TOTAL_TIMEOUT_S = 2
    reply, task = run(sqlite_services, media_server.url("drip/clip.mp4"))
    assert reply.task_status == "pending" and task.status == "pending"
    assert task.error_code == "download_timeout"


@pytest.fixture
def guarded(sqlite_services: Services, media_server) -> Services:
    """Private addresses refused; only the media server itself is allowlisted."""
    port = media_server.httpd.server_address[1]
    sqlite_services.url_policy = UrlPolicy(allowlist=frozenset({f"127.0.0.1:{port}"}))
    return sqlite_services


@pytest.mark.parametrize("target", [
    "http://127.0.0.1:1/x.mp4", "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/x.mp4", "http://localhost:1/x.mp4", "http://[::1]:1/x.mp4",
    "ftp://example.com/x.mp4", "http://user:pw@example.com/x.mp4",
])
def test_redirects_to_forbidden_targets_are_refused(guarded: Services, media_server,
                                                    target: str) -> None:
    reply, task = run(guarded, media_server.url(f"redirect-to/{quote(target, safe='')}"))
    assert (reply.kind, task.status, task.error_code) == (
        DeliveryKind.DONE, "failed", "url_forbidden")


def test_allowlisted_host_still_works(guarded: Services, media_server) -> None:
    _, task = run(guarded, media_server.url("files/clip.mp4"))
    assert task.status == "completed"


def test_dns_rebinding_is_refused_at_connect(sqlite_services: Services) -> None:
    """Create-time lookup says public; the downloader's own lookup says loopback."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    sqlite_services.url_policy = UrlPolicy(resolver=lambda host, port: next(answers))
    reply, task = run(sqlite_services, "http://rebind.example.test/video.mp4")
    assert (task.status, task.error_code) == ("failed", "url_forbidden")
    assert "does not resolve to a public address" in task.message


def test_retry_reuses_the_stored_video(sqlite_services: Services, media_server) -> None:
    class FlakyTagger:
        def __init__(self, inner) -> None:
            self.inner, self.calls = inner, 0
            self.provider, self.model = inner.provider, inner.model
            self.prompt_version = inner.prompt_version

        needs_quota = False

        def check_quota(self):
            pass

        def tag(self, request):
            from shared.errors import TransientError

            self.calls += 1
            if self.calls == 1:
                raise TransientError("model overloaded", error_code="tagger_unavailable")
            return self.inner.tag(request)

    sqlite_services.tagger = FlakyTagger(sqlite_services.tagger)
    reply, task = run(sqlite_services, media_server.url("files/clip.mp4"))
    assert reply.task_status == "pending" and task.storage_uri and task.video_sha256
    second = handle_delivery(task.task_id, sqlite_services.worker)
    done = sqlite_services.store.get(task.task_id)
    assert second.task_status == "completed" and done.video_sha256 == task.video_sha256
    assert media_server.hits["/files/clip.mp4"] == 1


@pytest.fixture
def guarded_client(app_env):
    app_env(ALLOW_PRIVATE_URLS="false")
    return functions_framework.create_app("api", "main.py").test_client()


@pytest.mark.parametrize("url", [
    "http://localhost/v.mp4", "http://[::1]/v.mp4", "http://0.0.0.0/v.mp4",
    "http://2130706433/v.mp4", "http://0x7f.1/v.mp4", "http://[::ffff:127.0.0.1]/v.mp4",
    "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/v.mp4",
    "http://192.168.1.20/v.mp4", "http://100.64.0.1/v.mp4", "http://224.0.0.1/v.mp4",
    "http://[fe80::1]/v.mp4", "http://[fc00::1]/v.mp4", "http://127.0.0.1:8080/v.mp4",
])
def test_create_refuses_internal_hosts(guarded_client, redis_client, url: str) -> None:
    response = guarded_client.post("/api/v1/task/create", json={"url": url, "platform": "rpa"})
    body = response.get_json()
    assert response.status_code == 400 and body["message"].startswith("url: host"), body
    assert len(queued_ids(redis_client)) == 0


def test_create_refuses_private_callback_url(guarded_client) -> None:
    response = guarded_client.post("/api/v1/task/create", json={
        "url": "http://93.184.216.34/v.mp4", "platform": "rpa",
        "callback_url": "http://127.0.0.1:9/hook"})
    assert response.status_code == 400
    assert response.get_json()["message"].startswith("callback_url: host")


def test_frames_are_stored_next_to_the_video(sqlite_services: Services, media_server,
                                             tmp_path: Path) -> None:
    _, task = run(sqlite_services, media_server.url("files/clip.mp4"))
    frame_keys = [k for k in stored_files(sqlite_services) if "/frames/" in k]
    assert frame_keys and all(k.startswith("videos/") and task.task_id in k for k in frame_keys)
    assert [f.uri.rsplit("/", 1)[1] for f in task.result.frames] == [
        k.rsplit("/", 1)[1] for k in sorted(frame_keys)]


def test_create_time_dns_is_cached_and_bounded() -> None:
    import time as clock

    from shared.video.safety import CachedResolver

    calls = []

    def slow(host: str, port: int) -> list[str]:
        calls.append(host)
        clock.sleep(0.5 if host == "slow.example.test" else 0)
        return ["93.184.216.34"]

    policy = UrlPolicy(resolver=CachedResolver(resolve=slow), create_timeout_s=0.1)
    started = clock.monotonic()
    policy.check_url("https://slow.example.test/v.mp4")  # accepted: the downloader decides
    assert clock.monotonic() - started < 0.3
    for _ in range(3):
        policy.check_url("https://cdn.example.test/v.mp4")
    assert calls.count("cdn.example.test") == 1
    failing = CachedResolver(resolve=lambda h, p: (calls.append(h), socket_error())[1])
    for _ in range(2):
        with pytest.raises(OSError):
            failing("nx.example.test", 443)
    assert calls.count("nx.example.test") == 1


def socket_error():
    raise OSError("Name or service not known")


def test_a_host_that_does_not_exist_is_refused_at_create(guarded_client, redis_client) -> None:
    """NXDOMAIN is a typo or a dead link: 400 at once, nothing queued."""
    response = guarded_client.post("/api/v1/task/create", json={
        "url": "https://no-such-host.invalid/v.mp4", "platform": "rpa"})
    body = response.get_json()
    assert response.status_code == 400, body
    assert body["message"] == ("url: host no-such-host.invalid does not exist "
                               "(DNS: no such name)")
    assert len(queued_ids(redis_client)) == 0


def test_a_dns_outage_at_create_is_accepted_and_left_to_the_download() -> None:
    """A temporary failure (EAI_AGAIN) may pass in a moment: create accepts the URL, the
    downloader resolves again (and retries) when it connects."""
    import socket

    from shared.video.safety import HostNotFound, HostUnresolved

    def down(host, port):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    def missing(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    UrlPolicy(resolver=down).check_url("https://cdn.example.org/v.mp4")  # accepted
    with pytest.raises(HostUnresolved):
        UrlPolicy(resolver=down).addresses("cdn.example.org", 443)
    with pytest.raises(HostNotFound) as caught:
        UrlPolicy(resolver=missing).check_url("https://gone.example.org/v.mp4")
    assert caught.value.error_code == "download_failed"


def test_by_default_four_hours_are_accepted_and_a_second_more_is_refused(
        sqlite_services: Services, media_server) -> None:
    """The defaults reach the peers (4 h, 2 GB) without setting anything; the refusal
    names the setting that would change it."""
    assert sqlite_services.settings.MAX_VIDEO_SECONDS == 4 * 3600
    assert sqlite_services.settings.MAX_VIDEO_MB == 2048
    _, over = run(sqlite_services, media_server.url("files/four_hours_and_a_second.mp4"))
    assert over.error_code == "video_too_long" and "MAX_VIDEO_SECONDS" in over.message
    _, four_hours = run(sqlite_services, media_server.url("files/four_hours.mp4"))
    assert four_hours.status == "completed", four_hours.message
    assert four_hours.result.technical.duration_s == 4 * 3600
