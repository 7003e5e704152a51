"""Near-duplicate reuse (issue 40): fingerprints of real ffmpeg clips, their comparison,
the stored fingerprints and the Redis band index (MariaDB + real Redis), the pipeline with
`reuse: similar`, and GET /api/v1/task/{id}/similar."""

from __future__ import annotations

import subprocess
from pathlib import Path

import functions_framework
import numpy as np
import pytest
import redis
import sqlalchemy as sa

from shared.app.similar import similar_videos
from shared.app.tasks import create_task
from shared.errors import NotFound
from shared.pipeline.runner import handle_delivery
from shared.services import Services, get_services
from shared.tasks.fingerprints import FingerprintStore, anchor_indexes, query_entries
from shared.tasks.models import CreateTaskRequest, SimilarQuery
from shared.tasks.removal import TaskRemoval
from shared.video import fingerprint
from shared.video.fingerprint import Fingerprint
from shared.video.frames import extract_frames
from shared.video.probe import MediaInfo, probe
from shared.video.similarity import compare
from tests.helpers import MediaServer
from tests.media import ffmpeg

SOURCE = ("mandelbrot=size=480x270:rate=25:start_scale=2:end_scale=0.02,"
          "drawtext=text='%{pts\\:flt}':fontsize=40:fontcolor=white:x=20:y=20")
TRANSFORMS = {
    "reencoded": ["-b:v", "150k"],
    "half": ["-vf", "scale=240:136"],
    "cropped": ["-vf", "crop=iw*0.95:ih*0.95"],
    "letterboxed": ["-vf", "scale=270:-2,pad=270:480:0:(oh-ih)/2"],
    "logo": ["-vf", "drawbox=x=iw-90:y=10:w=80:h=30:color=yellow@0.9:t=fill"],
}


def encode(source: str, audio: str, path: Path, seconds: float) -> Path:
    ffmpeg("-f", "lavfi", "-i", source, "-f", "lavfi", "-i", audio, "-t", str(seconds),
           "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-shortest", str(path))
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """A source, its copies, a different video, one sharing its first 6 s, a black screen
    and a still image, served from one folder."""
    folder = tmp_path_factory.mktemp("reuse")
    source = encode(SOURCE, "anoisesrc=seed=7:color=pink,lowpass=f=2500,volume=4",
                    folder / "source.mp4", 10)
    for name, options in TRANSFORMS.items():
        ffmpeg("-i", str(source), *options, "-c:a", "aac", str(folder / f"{name}.mp4"))
    ffmpeg("-ss", "1", "-i", str(source), "-c:v", "libx264", "-c:a", "aac",
           str(folder / "trimmed.mp4"))
    encode("life=size=480x270:rate=25:seed=3:mold=10:life_color=#00ff00,scale=480:270",
           "anoisesrc=seed=9:color=brown,volume=4", folder / "other.mp4", 10)
    other_end = encode("testsrc2=size=480x270:rate=25", "anoisesrc=seed=11,volume=2",
                       folder / "tail.mp4", 4)
    ffmpeg("-t", "6", "-i", str(source), "-i", str(other_end), "-filter_complex",
           "[0:v][0:a][1:v][1:a]concat=n=2:v=1:a=1[v][a]", "-map", "[v]", "-map", "[a]",
           "-c:v", "libx264", "-c:a", "aac", str(folder / "same_start.mp4"))
    encode("color=c=black:size=320x240:rate=25", "anoisesrc=seed=1,volume=2",
           folder / "black.mp4", 4)
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240", "-frames:v", "1",
           str(folder / "still.png"))
    ffmpeg("-loop", "1", "-i", str(folder / "still.png"), "-t", "4", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(folder / "still.mp4"))
    two_seconds = encode(SOURCE, "anoisesrc=seed=5,volume=3", folder / "two.mp4", 2)
    ffmpeg("-stream_loop", "4", "-i", str(two_seconds), "-c:v", "libx264", "-c:a", "aac",
           str(folder / "loop.mp4"))
    ffmpeg("-ss", "1", "-i", str(folder / "loop.mp4"), "-c:v", "libx264", "-c:a", "aac",
           str(folder / "loop_trimmed.mp4"))
    for name, original in (("gop1", source), ("two_gop1", two_seconds)):  # a key frame a second
        ffmpeg("-i", str(original), "-c:v", "libx264", "-preset", "veryfast", "-g", "25",
               "-c:a", "aac", str(folder / f"{name}.mp4"))
    return folder


def fingerprint_of(path: Path) -> fingerprint.Outcome:
    return fingerprint.start(path, path.with_suffix(".fp"), probe(path)).finish()


def fp(path: Path) -> Fingerprint:
    found = fingerprint_of(path).fingerprint
    assert found is not None
    return found


@pytest.mark.parametrize("name", [*TRANSFORMS, "trimmed"])
def test_each_kind_of_copy_matches_its_source(clips: Path, name: str) -> None:
    verdict = compare(fp(clips / f"{name}.mp4"), fp(clips / "source.mp4"))
    assert verdict.match, verdict
    assert verdict.similarity >= 0.7
    assert verdict.offset_s == (1.0 if name == "trimmed" else 0.0)
    expected = {"half": 0.5, "cropped": 0.95, "letterboxed": 0.5625}.get(name, 1.0)
    assert verdict.scale == pytest.approx(expected, abs=0.03)


def test_different_videos_do_not_match(clips: Path) -> None:
    verdict = compare(fp(clips / "other.mp4"), fp(clips / "source.mp4"))
    assert not verdict.match and verdict.similarity < 0.5


def test_same_first_seconds_is_not_the_same_video(clips: Path) -> None:
    """The first 6 s are the source's, the last 4 s another clip: the whole must match."""
    verdict = compare(fp(clips / "same_start.mp4"), fp(clips / "source.mp4"))
    assert not verdict.match
    assert verdict.reason in ("the pictures differ", "the sound differs")


def test_a_loop_trimmed_has_an_ambiguous_offset_and_is_refused(clips: Path) -> None:
    """A 2 s clip played 5 times, then trimmed by 1 s: 1 s, 3 s … fit alike."""
    verdict = compare(fp(clips / "loop_trimmed.mp4"), fp(clips / "loop.mp4"))
    assert not verdict.match and verdict.reason == "the offset is ambiguous"


def test_the_key_frames_full_decode_feeds_the_fingerprint(clips: Path, tmp_path: Path) -> None:
    """Where the key frames decode every frame, the fingerprint comes from that decode
    (no second one) and agrees with its own decode."""
    video = clips / "source.mp4"
    media = probe(video)
    tap = fingerprint.tap(tmp_path / "fp", media)
    frames = extract_frames(video, tmp_path / "frames", media.duration_s, tap=tap)
    assert frames.method == "decode_all" and frames.tapped and len(frames.frames) == 5
    from_frames = fingerprint.read(tap, media).fingerprint
    assert from_frames is not None and from_frames.audio is not None
    assert compare(from_frames, fp(video)).similarity >= 0.9


def key_frame_intake(video: Path, folder: Path,
                     media: MediaInfo | None = None) -> tuple[str, fingerprint.Outcome]:
    """The frames stage's decode and the fingerprint read from it: (method, outcome)."""
    media = media or probe(video)
    tap = fingerprint.tap(folder / "fp", media)
    frames = extract_frames(video, folder / "frames", media.duration_s, tap=tap)
    assert frames.tapped
    return frames.method, fingerprint.read(tap, media, keyframes=frames.method == "keyframes")


def test_key_frame_intake_fingerprints_without_a_decode_of_its_own(
        clips: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the key frames are key frames only, the one ffmpeg process that takes them
    also writes the fingerprint's frames (every key frame, with its time) and sound; the
    fingerprint matches the copies fingerprinted from every frame."""
    commands: list[list[str]] = []
    real = subprocess.Popen

    def counting(args, *rest, **options):
        commands.append(list(args))
        return real(args, *rest, **options)

    media = probe(clips / "gop1.mp4")
    monkeypatch.setattr(subprocess, "Popen", counting)
    method, outcome = key_frame_intake(clips / "gop1.mp4", tmp_path, media)
    monkeypatch.undo()
    assert method == "keyframes" and not outcome.decode
    assert len(commands) == 1 and "nokey" in commands[0]  # the key frames' run, alone
    found = outcome.fingerprint
    assert found is not None and found.times is not None and found.audio is not None
    assert np.allclose(found.times, np.arange(10), atol=0.05)  # a key frame a second
    assert np.array_equal(Fingerprint.from_bytes(found.to_bytes()).times, found.times)
    for name in ("half", "trimmed", "reencoded", "letterboxed"):
        verdict = compare(fp(clips / f"{name}.mp4"), found)
        assert verdict.match, (name, verdict)
        assert verdict.offset_s == (1.0 if name == "trimmed" else 0.0)
    assert not compare(fp(clips / "same_start.mp4"), found).match
    assert not compare(fp(clips / "other.mp4"), found).match


def test_too_few_key_frames_fall_back_to_a_decode_of_its_own(clips: Path,
                                                             tmp_path: Path) -> None:
    """Two key frames cannot show a picture changing: the fingerprint decodes itself."""
    method, outcome = key_frame_intake(clips / "two_gop1.mp4", tmp_path)
    assert method == "keyframes" and outcome.decode and outcome.fingerprint is None
    media = probe(clips / "two_gop1.mp4")
    decoded = fingerprint.start(clips / "two_gop1.mp4", tmp_path / "own", media).finish()
    assert decoded.fingerprint is not None and decoded.fingerprint.times is None


def test_fixed_rate_frames_are_those_shown_at_their_times(tmp_path: Path) -> None:
    """Each grey frame of the fixed rate is the frame shown at its sample time (not the
    last of its step, half a step later: the `fps` filter's default), so that a key
    frame of another encode meets the frame shown at the same moment."""
    video = tmp_path / "ramp.mp4"  # frame n has luma 16 + 4n (25 fps, lossless)
    ffmpeg("-f", "lavfi", "-i", "nullsrc=s=128x128:r=25:d=2,geq=lum='16+4*N':cb=128:cr=128",
           "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p", str(video))
    media = probe(video)
    pending = fingerprint.start(video, tmp_path / "fp", media)
    assert pending.process.wait(timeout=60) == 0
    frames = np.fromfile(pending.tap.frames_path, dtype=np.uint8).reshape(
        -1, fingerprint.GRID, fingerprint.GRID)
    luma = frames.mean(axis=(1, 2)) * 219 / 255 + 16  # the grey frames are full range
    shown = np.round((luma - 16) / 4).astype(int)
    rate = fingerprint.sample_rate(media.duration_s)
    assert rate == fingerprint.MAX_SAMPLE_FPS  # a short video: 5 a second
    assert shown.tolist() == [round(k / rate * 25) for k in range(len(shown))]


def test_fingerprints_stored_before_round_up_keep_their_late_frames(clips: Path) -> None:
    """Stored before the frames were taken at their times: each was shown about half a
    step after its slot, and is compared as such."""
    import io
    found = fp(clips / "source.mp4")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, hashes=found.hashes, flat=found.flat, audio=found.audio,
                        meta=np.array([found.duration_s, found.fps, found.content_width]))
    old = Fingerprint.from_bytes(buffer.getvalue())
    assert old.start_s == pytest.approx(0.5 / found.fps)
    assert old.sample_times[1] - old.sample_times[0] == pytest.approx(1 / found.fps)
    assert Fingerprint.from_bytes(found.to_bytes()).start_s == 0.0
    assert compare(found, old).match


@pytest.mark.parametrize("name", ["black.mp4", "still.mp4"])
def test_black_screen_and_still_image_have_no_fingerprint(clips: Path, name: str) -> None:
    outcome = fingerprint_of(clips / name)
    assert outcome.fingerprint is None
    assert "never reused" in (outcome.problem or "")


def test_fingerprint_round_trips_through_bytes(clips: Path) -> None:
    original = fp(clips / "source.mp4")
    copy = Fingerprint.from_bytes(original.to_bytes())
    assert copy.duration_s == original.duration_s and copy.fps == original.fps
    assert np.array_equal(copy.hashes, original.hashes)
    assert np.array_equal(copy.audio, original.audio)
    assert len(original.to_bytes()) < 4096  # 10 s: 20 frame hashes + 100 audio codes


def test_index_finds_the_source_and_forgets_a_deleted_task(
        clips: Path, services: Services) -> None:
    source_id = create(services, "https://cdn.example.com/source.mp4")
    other_id = create(services, "https://cdn.example.com/other.mp4")
    store = services.fingerprints
    first = store.save(source_id, fp(clips / "source.mp4"))
    assert store.save(source_id, fp(clips / "source.mp4")) == first  # a rerun: same row
    store.save(other_id, fp(clips / "other.mp4"))
    for name in ("trimmed", "letterboxed", "half"):
        found = store.load(store.candidates(fp(clips / f"{name}.mp4")))
        assert found and found[0].task_id == source_id, name
    packed = services.redis.hvals(next(iter(services.redis.scan_iter("reuse_index:*"))))
    assert all(len(value) % 8 == 0 for value in packed)
    services.store.delete(source_id)  # its index entries stay: they find no row
    found = store.load(store.candidates(fp(clips / "trimmed.mp4")))
    assert source_id not in [candidate.task_id for candidate in found]


def test_lookup_reads_a_bounded_number_of_entries(clips: Path) -> None:
    """Sub-linear: a lookup reads the bands of a few frames around each anchor, whatever
    the number of videos indexed."""
    found = fp(clips / "source.mp4")
    assert 1 <= len(anchor_indexes(found)) <= 6
    assert len(query_entries(found)) <= 6 * 13 * 4 * 3 + 6 * 63  # + one-bit probes


def test_a_copy_with_no_band_intact_is_found_by_probing(services: Services) -> None:
    """Every frame of the copy differs from its source in one bit of every band: no
    band survives, the one-bit probes of its anchor frames find it."""
    hashes = np.random.default_rng(4).integers(0, 2 ** 63, 40, dtype=np.uint64)
    source = Fingerprint(20.0, 2.0, hashes, np.zeros(40, bool), None, 320.0)
    saved = services.fingerprints.save(create(services, "https://cdn.example.com/p.mp4"),
                                       source)
    flips = np.uint64(sum(1 << (16 * band + 3) for band in range(4)))
    copy = Fingerprint(20.0, 2.0, hashes ^ flips, source.flat, None, 320.0)
    assert services.fingerprints.candidates(copy) == [saved]


def test_redis_down_proposes_nothing(clips: Path, services: Services) -> None:
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5,
                       socket_timeout=0.5, decode_responses=True)
    store = FingerprintStore(services.store.engine, down)
    assert store.candidates(fp(clips / "source.mp4")) == []
    task_id = create(services, "https://cdn.example.com/source.mp4")
    assert store.save(task_id, fp(clips / "source.mp4")) > 0  # stored, not indexed


def create(services: Services, url: str, team: str = "default", **fields) -> str:
    request = CreateTaskRequest.model_validate(
        {"url": url, "platform": "rpa", **fields}, context={"platforms": ["rpa"]})
    return create_task(services, request, team=team)[0].task_id


class CountingTagger:
    """The local tagger, counting its calls: a reused result makes none."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def tag(self, request):
        self.calls += 1
        return self.inner.tag(request)


@pytest.fixture
def served(clips: Path):
    server = MediaServer(clips).start()
    yield server
    server.stop()


def run(services: Services, served: MediaServer, name: str, team: str = "default", **fields):
    task_id = create(services, served.url(f"files/{name}"), team, **fields)
    handle_delivery(task_id, services.worker)
    task = services.store.get(task_id)
    assert task is not None and task.status == "completed", task
    return task


@pytest.mark.slow
def test_similar_copy_completes_from_the_source_without_a_model_call(
        clips: Path, services: Services, served: MediaServer) -> None:
    tagger = services.tagger = CountingTagger(services.tagger)
    source = run(services, served, "source.mp4", reuse="similar")
    assert tagger.calls == 1 and source.result.reused_from is None
    copy = run(services, served, "trimmed.mp4", reuse="similar")
    assert tagger.calls == 1
    reused = copy.result.reused_from
    assert reused is not None and reused.task_id == source.task_id and reused.offset_s == 1.0
    assert copy.result.tags == source.result.tags and copy.result.usage.requests == 0
    assert copy.result.technical.duration_s == pytest.approx(9, abs=0.2)  # its own facts
    for moved, earlier in zip(copy.result.key_moments, source.result.key_moments,
                              strict=False):
        assert moved.start_s == pytest.approx(max(0.0, earlier.start_s - 1.0), abs=0.6)
    exact = run(services, served, "half.mp4", reuse="exact")  # not byte-identical: tagged
    assert tagger.calls == 2 and exact.result.reused_from is None
    different = run(services, served, "other.mp4", reuse="similar")
    assert tagger.calls == 3 and different.result.reused_from is None
    other_language = run(services, served, "cropped.mp4", reuse="similar", language="en")
    assert tagger.calls == 4 and other_language.result.reused_from is None
    services.store.delete(source.task_id)  # the copy keeps its own result
    kept = services.store.get(copy.task_id)
    assert kept is not None and kept.result == copy.result
    after = run(services, served, "letterboxed.mp4", reuse="similar")
    assert after.result.reused_from is None or after.result.reused_from.task_id in (
        copy.task_id, exact.task_id)


@pytest.mark.slow
def test_similar_reuse_stays_within_a_team_unless_shared(
        clips: Path, services: Services, served: MediaServer) -> None:
    tagger = services.tagger = CountingTagger(services.tagger)
    source = run(services, served, "source.mp4", "news", reuse="similar")
    elsewhere = run(services, served, "half.mp4", "sport", reuse="similar")
    assert tagger.calls == 2 and elsewhere.result.reused_from is None
    services.settings = services.settings.model_copy(update={"SHARE_RESULT_CACHE": True})
    shared = run(services, served, "logo.mp4", "sport", reuse="similar")
    assert tagger.calls == 2 and shared.result.reused_from is not None
    assert shared.result.reused_from.task_id in (source.task_id, elsewhere.task_id)


@pytest.mark.slow
def test_reuse_none_and_no_fingerprint_are_tagged_with_a_warning(
        clips: Path, services: Services, served: MediaServer) -> None:
    tagger = services.tagger = CountingTagger(services.tagger)
    run(services, served, "source.mp4")
    again = run(services, served, "source.mp4", reuse="none")  # byte-identical, but none
    assert tagger.calls == 2 and not again.result.cached
    run(services, served, "still.mp4")
    still = run(services, served, "still.mp4", reuse="similar")
    assert tagger.calls == 3 and still.result.cached  # the exact copy is still reused
    black = run(services, served, "black.mp4", reuse="similar")
    assert tagger.calls == 4
    assert any("no fingerprint" in warning for warning in black.result.warnings)


@pytest.fixture
def client(app_env):
    return functions_framework.create_app("api", "main.py").test_client()


def test_reuse_field_is_checked_and_kept(client) -> None:
    body = {"url": "https://cdn.example.com/v.mp4", "platform": "rpa"}
    response = client.post("/api/v1/task/create", json={**body, "reuse": "fuzzy"})
    assert response.status_code == 400
    assert response.get_json()["field"] == "reuse"
    created = client.post("/api/v1/task/create", json={**body, "reuse": "similar"}).get_json()
    task = client.get(f"/api/v1/task/{created['task_id']}").get_json()["data"]
    assert task["reuse"] == "similar"
    default = client.post("/api/v1/task/create", json=body).get_json()
    assert client.get(f"/api/v1/task/{default['task_id']}").get_json()["data"]["reuse"] == \
        "exact"


def test_similar_route_lists_the_closest_earlier_videos(clips: Path, client) -> None:
    services = get_services()
    body = {"url": "https://cdn.example.com/v.mp4", "platform": "rpa"}
    ids = [client.post("/api/v1/task/create", json=body).get_json()["task_id"]
           for _ in range(3)]
    for task_id, name in zip(ids, ("source", "other", "trimmed"), strict=True):
        services.fingerprints.save(task_id, fp(clips / f"{name}.mp4"))
    response = client.get(f"/api/v1/task/{ids[2]}/similar?limit=5")
    assert response.status_code == 200
    data = response.get_json()["data"]
    assert data["fingerprinted"] is True
    assert data["videos"][0]["task_id"] == ids[0] and data["videos"][0]["match"] is True
    assert data["videos"][0]["offset_s"] == 1.0
    first = client.get(f"/api/v1/task/{ids[0]}/similar").get_json()["data"]
    assert first["videos"] == []  # nothing earlier
    unprocessed = client.post("/api/v1/task/create", json=body).get_json()["task_id"]
    assert client.get(f"/api/v1/task/{unprocessed}/similar").get_json()["data"] == {
        "task_id": unprocessed, "fingerprinted": False, "videos": []}
    assert client.get(f"/api/v1/task/{ids[0]}/similar?limit=0").status_code == 400
    missing = "00000000-0000-4000-8000-000000000000"
    assert client.get(f"/api/v1/task/{missing}/similar").status_code == 404
    with services.store.engine.begin() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM video_fingerprints")).scalar() == 3


def test_similar_lists_only_the_teams_own(clips: Path, services: Services) -> None:
    news = create(services, "https://cdn.example.com/a.mp4", "news")
    sport = create(services, "https://cdn.example.com/b.mp4", "sport")
    copy = create(services, "https://cdn.example.com/c.mp4", "news")
    for task_id, name in ((news, "source"), (sport, "source"), (copy, "trimmed")):
        services.fingerprints.save(task_id, fp(clips / f"{name}.mp4"))
    mine = similar_videos(services, copy, SimilarQuery(), "news")
    assert [video.task_id for video in mine.videos] == [news]
    everyone = similar_videos(services, copy, SimilarQuery(), None)  # an admin key
    assert {video.task_id for video in everyone.videos} == {news, sport}
    with pytest.raises(NotFound):
        similar_videos(services, copy, SimilarQuery(), "sport")


def test_deleting_tasks_deletes_their_fingerprints(clips: Path, services: Services) -> None:
    """The DELETE route and retention (`TaskRemoval`), and `TaskStore.delete`."""
    removed, dropped, kept = (create(services, f"https://cdn.example.com/{n}.mp4")
                              for n in ("a", "b", "c"))
    for task_id in (removed, dropped, kept):
        services.fingerprints.save(task_id, fp(clips / "source.mp4"))
    assert TaskRemoval(services.store.engine).delete([removed]) == [removed]
    services.store.delete(dropped)
    assert services.fingerprints.get(removed) is None
    assert services.fingerprints.get(dropped) is None
    assert services.fingerprints.get(kept) is not None
