"""Near-duplicate reuse (issue 40): how many transformed copies find their source's
result, how many distinct videos would wrongly reuse another's, what fingerprinting adds
to the intake, and the index lookup at 1,000,000 fingerprints.

    python -m benchmarks.reuse [--sources 50] [--negatives 500] [--synthetic 1000000]

Clips (generated once under var/bench/reuse/, 2 ffmpeg jobs at a time): `--sources`
distinct sources drawn from varied lavfi generators (mandelbrot, life, cellauto,
testsrc2 with moving text, gradients, moving boxes; seeds and parameters vary; most with
sound: filtered noise at varied colours, bands and tremolos; one in five silent) × 6
transformations (a third of the bitrate, 0.5× scale, 5 % crop, letterboxed to 9:16, a
corner logo, the first second trimmed), plus `--negatives` more distinct clips.

Reuse is decided as the pipeline does: the Redis band index (`FingerprintStore` on a
throw-away SQLite file and BENCH_REDIS_URL, flushed) proposes candidates, `compare`
judges them. False reuses are counted twice: every distinct clip looked up against the
index holding all the others, and every pair of distinct clips compared (pairs whose
best alignment differs in more than the match threshold are ruled out in bulk first).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as shared/ sets it (numpy first here)
import numpy as np
import redis

from shared.tasks.db import create_db_engine, migrate
from shared.tasks.fingerprints import FingerprintStore, duration_class
from shared.video import fingerprint as fingerprints
from shared.video.fingerprint import Fingerprint
from shared.video.frames import extract_frames
from shared.video.probe import ffmpeg_exe, probe
from shared.video.similarity import FRAME_BITS, MIN_SIMILARITY, compare

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench" / "reuse"
SIZE, SECONDS, RATE = (320, 180), 8, 25
FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
MANDELBROT_SPOTS = [(-0.743643887, 0.131825904), (-0.7453, 0.1127), (-1.25066, 0.02012),
                    (-0.16, 1.0405), (0.285, 0.01), (-0.8, 0.156), (-1.7687, 0.0017),
                    (0.3245, 0.0440), (-0.1011, 0.9563), (-1.4002, 0.0)]
"""Points on the set's edge: a zoom there keeps changing (inside it is black)."""
TRANSFORMS = ("bitrate_third", "scale_half", "crop_5pct", "letterbox_9x16", "logo",
              "trim_1s")


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", *args],
                   check=True, timeout=300)


def video_source(seed: int) -> str:
    """One of several generators with parameters drawn from the seed."""
    rng = random.Random(seed)
    w, h = SIZE
    kind = seed % 6
    if kind == 0:
        x, y = rng.choice(MANDELBROT_SPOTS)
        return (f"mandelbrot=size={w}x{h}:rate={RATE}:start_x={x + rng.uniform(-1e-3, 1e-3)}:"
                f"start_y={y + rng.uniform(-1e-3, 1e-3)}:start_scale={rng.uniform(1, 3):.3f}:"
                f"end_scale={rng.uniform(0.005, 0.05):.4f}:end_pts={rng.randint(20, 60)}:"
                f"maxiter={rng.randint(150, 400)}:"
                f"inner={rng.choice(['black', 'convergence', 'mincol', 'period'])},"
                f"hue=H=t*{rng.uniform(0.2, 2):.2f}")
    if kind == 1:
        rule = rng.choice(["B3/S23", "B36/S23", "B3678/S34678", "B368/S245"])
        return (f"life=size={w // 4}x{h // 4}:rate={RATE}:seed={seed}:rule={rule}:"
                f"ratio={rng.uniform(0.1, 0.6):.2f}:mold={rng.randint(0, 30)}:"
                f"life_color=#{rng.randrange(0x404040, 0xFFFFFF):06x}:"
                f"mold_color=#{rng.randrange(0, 0xFFFFFF):06x},scale={w}:{h}:flags=neighbor")
    if kind == 2:
        return (f"cellauto=size={w // 2}x{h // 2}:rate={RATE}:seed={seed}:"
                f"rule={rng.choice([18, 30, 45, 54, 60, 73, 90, 105, 110, 150])}:"
                f"random_fill_ratio={rng.uniform(0.2, 0.8):.2f}:scroll=1,"
                f"scale={w}:{h}:flags=neighbor,hue=h={rng.randint(0, 359)}:s=3")
    if kind == 3:
        spin = rng.choice([-1, 1]) * rng.uniform(0.1, 0.6)
        words = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(6))
        return (f"sierpinski=size={2 * w}x{2 * h}:rate={RATE}:seed={seed}:"
                f"jump={rng.randint(1, 40)}:type={rng.choice(['carpet', 'triangle'])},"
                f"crop={w}:{h}:{rng.randint(0, w)}:{rng.randint(0, h)},"
                f"rotate=a={rng.uniform(0, 6.28):.2f}+t*{spin:.2f}:"
                f"c=#{rng.randrange(0, 0xFFFFFF):06x},hue=h={rng.randint(0, 359)}:s=2,"
                f"drawtext=fontfile={FONT}:text={words}:fontsize={rng.randint(24, 48)}:"
                f"fontcolor=white:x='mod(t*{rng.randint(20, 90)},w)':"
                f"y='h/2+sin(t*{rng.uniform(0.5, 3):.2f})*h/3'")
    if kind == 4:
        return (f"gradients=size={w}x{h}:rate={RATE}:seed={seed}:"
                f"nb_colors={rng.randint(2, 8)}:speed={rng.uniform(0.04, 0.15):.3f}:"
                f"type={rng.choice(['linear', 'radial', 'circular', 'spiral'])}")
    boxes = ",".join(
        f"drawtext=fontfile={FONT}:text='{rng.choice('■●▲◆★')}':"
        f"fontsize={rng.randint(40, 110)}:fontcolor=#{rng.randrange(0, 0xFFFFFF):06x}:"
        f"x='mod({rng.randint(0, w)}+t*{rng.randint(-80, 80)},w)':"
        f"y='mod({rng.randint(0, h)}+t*{rng.randint(-60, 60)},h)'"
        for _ in range(rng.randint(2, 5)))
    return f"color=c=#{rng.randrange(0, 0xFFFFFF):06x}:size={w}x{h}:rate={RATE},{boxes}"


def audio_source(seed: int) -> str | None:
    rng = random.Random(seed * 7 + 1)
    if seed % 5 == 4:
        return None
    return (f"anoisesrc=seed={seed}:color={rng.choice(['white', 'pink', 'brown'])}:"
            f"amplitude=0.5,bandpass=f={rng.randint(200, 3000)}:width_type=o:w=2,"
            f"tremolo=f={rng.uniform(0.3, 5):.2f}:d=0.8,volume=4")


def make_clip(seed: int, path: Path) -> Path:
    if path.exists():
        return path
    audio = audio_source(seed)
    inputs = ["-f", "lavfi", "-i", video_source(seed)]
    if audio:
        inputs += ["-f", "lavfi", "-i", audio]
    ffmpeg(*inputs, "-t", str(SECONDS), "-c:v", "libx264", "-preset", "veryfast",
           "-pix_fmt", "yuv420p", *(["-c:a", "aac"] if audio else []), str(path))
    return path


def transform(source: Path, name: str, path: Path) -> Path:
    if path.exists():
        return path
    bitrate = probe(source).bitrate_kbps or 600
    options = {
        "bitrate_third": ["-b:v", f"{max(bitrate // 3, 30)}k"],
        "scale_half": ["-vf", "scale=iw/2:-2"],
        "crop_5pct": ["-vf", "crop=iw*0.95:ih*0.95"],
        "letterbox_9x16": ["-vf", "scale=iw:-2,pad=iw:trunc(iw*16/9/2)*2:0:(oh-ih)/2"],
        "logo": ["-vf", "drawbox=x=iw-iw/4-6:y=6:w=iw/4:h=ih/8:color=white@0.85:t=fill,"
                        f"drawtext=fontfile={FONT}:text=LOGO:fontsize=18:fontcolor=red:"
                        "x=w-w/4:y=8"],
    }.get(name)
    if name == "trim_1s":
        ffmpeg("-ss", "1", "-i", str(source), "-c:v", "libx264", "-preset", "veryfast",
               "-c:a", "aac", str(path))
    else:
        ffmpeg("-i", str(source), *options, "-c:v", "libx264", "-preset", "veryfast",
               "-c:a", "aac", str(path))
    return path


def fingerprint_of(path: Path) -> tuple[fingerprints.Outcome, float]:
    """The fingerprint as the frames stage takes it: from the key frames' decode (every
    frame, or the key frames), a decode of its own only for too few key frames."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        outcome = intake(path, Path(folder), "new")[1]
    assert outcome is not None
    return outcome, time.perf_counter() - started


def intake(path: Path, folder: Path, kind: str) -> tuple[str, fingerprints.Outcome | None]:
    """probe + key frames (the intake's decoding), and the fingerprint: `base` none,
    `old` as before issue 40's follow-up (only a full decode feeds it; else a decode of
    its own), `new` from whatever the key frames decode. (frames' method, outcome)."""
    media = probe(path)
    tap = fingerprints.tap(folder / "fp", media) if kind != "base" else None
    if tap is not None and kind == "old":
        tap = dataclasses.replace(tap, keyframe_filter="")
    frames = extract_frames(path, folder / "frames", media.duration_s, tap=tap)
    if tap is None:
        return frames.method, None
    outcome = (fingerprints.read(tap, media, keyframes=frames.method == "keyframes")
               if frames.tapped else None)
    if outcome is None or outcome.decode:
        outcome = fingerprints.start(path, folder / "fp", media).finish()
    return frames.method, outcome


def generate(args: argparse.Namespace) -> tuple[list[Path], dict[str, list[Path]], list[Path]]:
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        sources, seed, stills = [], 0, []
        while len(sources) < args.sources:  # a still source has no copies to find
            batch = range(seed, seed + args.sources - len(sources))
            made = list(pool.map(lambda i: make_clip(i, BENCH_DIR / f"src{i:03d}.mp4"), batch))
            for path, (outcome, _) in zip(made, pool.map(fingerprint_of, made), strict=True):
                (sources if outcome.fingerprint is not None else stills).append(path)
            seed = batch.stop
        if stills:
            print(f"sources without a fingerprint (still pictures), replaced: "
                  f"{', '.join(path.stem for path in stills)}")
        negatives = list(pool.map(lambda i: make_clip(i, BENCH_DIR / f"neg{i:04d}.mp4"),
                                  range(1000, 1000 + args.negatives)))
        copies = {name: list(pool.map(
            lambda src, n=name: transform(src, n, src.with_name(f"{src.stem}_{n}.mp4")),
            sources)) for name in TRANSFORMS}
    print(f"clips ready: {len(sources)} sources, {len(sources) * len(TRANSFORMS)} copies, "
          f"{len(negatives)} negatives ({time.perf_counter() - started:.0f} s)")
    return sources, copies, negatives


def fingerprint_all(paths: list[Path]) -> dict[Path, fingerprints.Outcome]:
    with ThreadPoolExecutor(2) as pool:
        return {path: outcome for path, (outcome, _) in zip(
            paths, pool.map(fingerprint_of, paths), strict=True)}


def open_store(folder: Path, redis_url: str) -> FingerprintStore:
    os.environ.setdefault("TAGGER", "local")
    from shared.config import load_settings
    engine = create_db_engine(load_settings(DATABASE_URL=f"sqlite:///{folder / 'fp.db'}",
                                            REDIS_URL=redis_url))
    migrate(engine)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    return FingerprintStore(engine, client)


def decide(store: FingerprintStore, known: dict[int, tuple[str, Fingerprint]],
           fp: Fingerprint, skip: str | None = None) -> str | None:
    """The source whose result the pipeline would reuse, as the tag stage decides: the
    most similar of the candidates that match."""
    best: tuple[float, str] | None = None
    for candidate in store.candidates(fp):
        name, other = known[candidate]
        verdict = compare(fp, other)
        if name != skip and verdict.match and (best is None or verdict.similarity > best[0]):
            best = verdict.similarity, name
    return None if best is None else best[1]


def reuse_rates(store: FingerprintStore, known: dict[int, tuple[str, Fingerprint]],
                sources: list[Path], copies: dict[str, list[Path]],
                prints: dict[Path, fingerprints.Outcome]) -> None:
    total = right = wrong = missed = 0
    ranks: list[int | None] = []
    for name, paths in copies.items():
        good = bad = 0
        for source, copy in zip(sources, paths, strict=True):
            fp, original = prints[copy].fingerprint, prints[source].fingerprint
            found = decide(store, known, fp) if fp is not None else None
            good += found == source.stem
            bad += found is not None and found != source.stem
            if (found is None and fp is not None and original is not None
                    and compare(fp, original).match):  # the index did not propose it
                missed += 1
                ranks.append(rank_of(store, known, fp, source.stem))
        total, right, wrong = total + len(paths), right + good, wrong + bad
        print(f"  {name:15} {good}/{len(paths)} reused their source's result"
              f"{f', {bad} reused ANOTHER video' if bad else ''}")
    print(f"transformed copies reusing their source: {right}/{total} = "
          f"{100 * right / max(total, 1):.1f} % (target >= 95 %); wrong source: {wrong}; "
          f"a match the index did not propose: {missed} (its rank by hits: {ranks})")


def rank_of(store: FingerprintStore, known: dict[int, tuple[str, Fingerprint]],
            fp: Fingerprint, name: str) -> int | None:
    """Where the source stands among every id the index proposes (None: not at all)."""
    found = [known[i][0] for i in store.candidates(fp, limit=100_000)]
    return found.index(name) + 1 if name in found else None


def false_reuses_by_index(store: FingerprintStore, known: dict[int, tuple[str, Fingerprint]],
                          distinct: list[tuple[str, Fingerprint]]) -> None:
    lookups, wrong, started = 0, [], time.perf_counter()
    for name, fp in distinct:
        found = decide(store, known, fp, skip=name)
        lookups += 1
        if found is not None:
            wrong.append((name, found))
    print(f"false reuses, each distinct clip looked up among the others: {len(wrong)} of "
          f"{lookups} lookups ({(time.perf_counter() - started) / lookups * 1000:.1f} ms "
          f"each, index + compare) {wrong[:5] if wrong else ''}")


def false_reuses_all_pairs(distinct: list[tuple[str, Fingerprint]]) -> None:
    """Every pair; a pair of fixed-rate fingerprints whose frames differ by more than the
    match allows at every alignment (mean bits over the overlap) cannot match and is
    ruled out in bulk; a key-frame fingerprint is compared in full with every other."""
    sparse = [entry for entry in distinct if entry[1].times is not None]
    wrong_sparse, close = [], 0
    for name, fp in sparse:
        others = [entry for entry in distinct if entry[0] != name]
        near = [entry for entry, bits in zip(others, best_bits(fp, others), strict=True)
                if bits <= (1 - MIN_SIMILARITY) * FRAME_BITS / 2 + 4]
        close += len(near)
        wrong_sparse += [(name, other) for other, ofp in near
                         if compare(fp, ofp).match or compare(ofp, fp).match]
    print(f"  key-frame fingerprints checked against every other: {len(sparse)} ({close} "
          f"pairs close enough to compare in full), false reuses: {len(wrong_sparse)} "
          f"{wrong_sparse[:5]}")
    distinct = [entry for entry in distinct if entry[1].times is None]
    length = min(len(fp.hashes) for _, fp in distinct)
    hashes = np.stack([fp.hashes[:length] for _, fp in distinct])
    best = np.full((len(distinct), len(distinct)), np.inf)
    for shift in range(-7, 8):
        a = hashes[:, max(0, -shift):length - max(0, shift)]
        b = hashes[:, max(0, shift):length - max(0, -shift)]
        bits = np.stack([np.bitwise_count(a[i][None, :] ^ b).mean(axis=1)
                         for i in range(len(distinct))])
        best = np.minimum(best, bits)
    limit = (1 - MIN_SIMILARITY) * FRAME_BITS / 2 + 4  # a margin for the flat frames
    survivors = [(i, j) for i, j in zip(*np.nonzero(best <= limit), strict=True) if i < j]
    wrong = [(distinct[i][0], distinct[j][0]) for i, j in survivors
             if compare(distinct[i][1], distinct[j][1]).match
             or compare(distinct[j][1], distinct[i][1]).match]
    pairs = len(distinct) * (len(distinct) - 1) // 2
    np.fill_diagonal(best, np.inf)
    upper = np.triu(best, 1) + np.tril(np.full_like(best, np.inf))
    closest = np.argsort(upper, axis=None)[:5]
    print("  closest distinct pairs (bits a frame at the best alignment): " + ", ".join(
        f"{distinct[i][0]}/{distinct[j][0]} {upper[i, j]:.1f}"
        for i, j in zip(*np.unravel_index(closest, best.shape), strict=True)))
    print(f"false reuses over all {pairs} pairs of distinct clips: {len(wrong)} "
          f"({len(survivors)} pairs close enough to compare in full) {wrong[:5]}; the "
          f"closest pair differs in {best.min():.1f} bits a frame at its best alignment "
          f"(a match needs <= {(1 - MIN_SIMILARITY) * FRAME_BITS / 2:.1f}, copies here: "
          f"see above)")


def best_bits(fp: Fingerprint, others: list[tuple[str, Fingerprint]]) -> list[float]:
    """Per other fingerprint, the fewest mean differing bits of `fp`'s frames against
    the frames shown nearest them, over offsets within ±3 s (a bound for `compare`)."""
    from shared.video.similarity import pair_bits
    found = []
    for _, other in others:
        paired = (pair_bits(fp, other, float(offset)) for offset in np.arange(-3.0, 3.01, 0.5))
        found.append(min((float(p[1].mean()) for p in paired if p is not None),
                         default=np.inf))
    return found


def intake_overhead(paths: list[Path], repeat: int) -> None:
    """probe + key frames (the intake's decoding; the download is left out, which makes
    the share larger) without the fingerprint, with it as before (a decode of its own
    unless the key frames decode every frame) and as now (from what the key frames
    decode); alternated, medians."""
    times: dict[str, list[float]] = {"base": [], "old": [], "new": []}
    cpu: dict[str, list[float]] = {"base": [], "old": [], "new": []}
    methods, sparse = [], []
    for path in paths:
        runs: dict[str, list[float]] = {kind: [] for kind in times}
        cpu_runs: dict[str, list[float]] = {kind: [] for kind in times}
        for _ in range(repeat):
            for kind in times:
                with tempfile.TemporaryDirectory() as folder:
                    started, spent = time.perf_counter(), cpu_seconds()
                    method, outcome = intake(path, Path(folder), kind)
                    runs[kind].append(time.perf_counter() - started)
                    cpu_runs[kind].append(cpu_seconds() - spent)
                    assert kind == "base" or (outcome and outcome.fingerprint), path
                    if kind == "new":
                        assert outcome is not None and outcome.fingerprint is not None
                        sparse.append(outcome.fingerprint.times is not None)
        for kind in times:
            times[kind].append(statistics.median(runs[kind]))
            cpu[kind].append(statistics.median(cpu_runs[kind]))
        methods.append(method)
    print(f"  key-frame fingerprints (no decode of their own): {sum(sparse[::repeat])} of "
          f"{len(paths)} clips")
    last = len(paths) - 1
    groups = (("8 s clips whose key frames decode every frame (one decode)",
               [i for i in range(last) if methods[i] == "decode_all"]),
              ("8 s clips whose key frames are key frames only",
               [i for i in range(last) if methods[i] == "keyframes"]),
              ("60 s 720p, GOP 2 s, key frames only", [last]))
    for label, chosen in groups:
        if not chosen:
            continue
        for measure, figures in (("wall", times), ("CPU", cpu)):
            b, o, n = (sum(figures[kind][i] for i in chosen) / len(chosen) * 1000
                       for kind in ("base", "old", "new"))
            print(f"intake (probe + key frames), {label}, {len(chosen)} clip(s), {measure}: "
                  f"{b:.0f} ms; with the fingerprint as before {o:.0f} ms "
                  f"(+{100 * (o - b) / b:.0f} %), now {n:.0f} ms (+{100 * (n - b) / b:.0f} %; "
                  f"target <= 10 %)")


def cpu_seconds() -> float:
    """CPU time of this process and the ffmpeg processes it waited for: on a shared,
    loaded machine the steadier measure of the work done."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def long_clip(seconds: int = 60) -> Path:
    """720p, 30 fps, a key frame every 2 s, with sound (generated once)."""
    path = BENCH_DIR / ("long_720p_60s.mp4" if seconds == 60 else f"long_720p_{seconds}s.mp4")
    if not path.exists():
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}", "-f",
               "lavfi", "-i", f"anoisesrc=seed=5:d={seconds},volume=2", "-c:v", "libx264",
               "-preset", "veryfast", "-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac",
               "-shortest", str(path))
    return path


def synthetic_index(store: FingerprintStore, count: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """`count` videos' anchors written in bulk in the layout `FingerprintStore.index`
    writes (checked on a sample): random 63-bit anchor hashes, durations 5–600 s."""
    from shared.tasks.fingerprints import ANCHORS, BANDS, band_entries
    durations = np.exp(rng.uniform(np.log(5), np.log(600), count))
    anchors = rng.integers(0, 2 ** 63, (count, ANCHORS), dtype=np.uint64)
    classes = np.array([duration_class(d) for d in durations])
    ids = np.repeat(np.arange(1, count + 1, dtype=np.uint32), ANCHORS * BANDS)
    values = np.stack([(anchors >> np.uint64(16 * b)) & np.uint64(0xFFFF)
                       for b in range(BANDS)], axis=2).reshape(-1).astype(np.int64)
    bands = np.tile(np.arange(BANDS), count * ANCHORS)
    cls = np.repeat(classes, ANCHORS * BANDS)
    order = np.lexsort((ids, values, cls, bands))
    bands, cls, values, ids = bands[order], cls[order], values[order], ids[order]
    packed = ids.astype(">u4").tobytes().hex()
    group = (bands * 1000 + cls) * 65536 + values
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    ends = np.r_[starts[1:], len(group)]
    pipe = store.redis.pipeline(transaction=False)
    mapping: dict[str, dict[str, str]] = {}
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        value = int(values[start])
        key = f"reuse_index:{bands[start]}:{cls[start]}:{value >> 8}"
        mapping.setdefault(key, {})[str(value & 0xFF)] = packed[start * 8:end * 8]
    for number, (key, fields) in enumerate(mapping.items()):
        pipe.hset(key, mapping=fields)
        if number % 500 == 499:
            pipe.execute()
    pipe.execute()
    sample = int(anchors[0, 0])
    assert band_entries(sample, (int(classes[0]),))[0][0].startswith("reuse_index:0:")
    return durations, anchors


def three_class_entries(fp: Fingerprint) -> list[tuple[str, str]]:
    """The lookup's fields before it read only the classes a source can be filed under:
    every frame near an anchor in its own duration class and both neighbours, plus the
    one-bit probes (the baseline of `lookup_at_scale`)."""
    from shared.tasks.fingerprints import ANCHORS, anchor_indexes, band_entries, probe_entries
    from shared.video.similarity import MAX_OFFSET_S
    cls = duration_class(fp.duration_s)
    entries: set[tuple[str, str]] = set()
    for k in range(ANCHORS):
        anchor = (k + 0.5) / ANCHORS * fp.duration_s
        for i in np.flatnonzero((np.abs(fp.sample_times - anchor) <= MAX_OFFSET_S) & ~fp.flat):
            entries.update(band_entries(int(fp.hashes[i]), (cls - 1, cls, cls + 1)))
    for index in anchor_indexes(fp):
        entries.update(probe_entries(int(fp.hashes[index]), cls))
    return sorted(entries)


def timed_lookup(store: FingerprintStore, query: Fingerprint, how: str) -> tuple[float, list[int]]:
    """(ms, candidates) of one lookup: `before` (three classes), `bands` (no probes),
    `now` (`FingerprintStore.candidates`)."""
    from shared.tasks.fingerprints import query_entries
    began = time.perf_counter()
    if how == "before":
        candidates = store.lookup(three_class_entries(query))
    elif how == "bands":
        candidates = store.lookup(query_entries(query, probe=False))
    else:
        candidates = store.candidates(query)
    return (time.perf_counter() - began) * 1000, candidates


def lookup_at_scale(store: FingerprintStore, count: int, queries: int) -> None:
    from shared.tasks.fingerprints import anchor_indexes
    rng = np.random.default_rng(40)
    started = time.perf_counter()
    durations, anchors = synthetic_index(store, count, rng)
    memory = store.redis.info("memory")["used_memory"] / 2 ** 20
    print(f"synthetic index: {count:,} fingerprints in {time.perf_counter() - started:.0f} s, "
          f"Redis {memory:,.0f} MiB in all")
    labels = {"before": "before (three duration classes, one-bit probes)",
              "bands": "now without the one-bit probes", "now": "now (with the probes)"}
    times: dict[str, list[float]] = {how: [] for how in labels}
    found = dict.fromkeys(labels, 0)
    for target in rng.integers(0, count, queries):
        duration = float(durations[target])
        fps = fingerprints.sample_rate(duration)
        frames = int(duration * fps)
        hashes = rng.integers(0, 2 ** 63, frames, dtype=np.uint64)
        query = Fingerprint(duration, fps, hashes, np.zeros(frames, bool), None, 320.0)
        for k, index in enumerate(anchor_indexes(query)):  # the copy: 3 bits flipped
            flips = rng.choice(63, 3, replace=False)
            hashes[index] = anchors[target, k] ^ np.uint64(sum(1 << int(f) for f in flips))
        for how in labels:  # alternated, the same query each
            took, candidates = timed_lookup(store, query, how)
            times[how].append(took)
            found[how] += int(target) + 1 in candidates
    p95 = {how: sorted(t)[int(len(t) * 0.95)] for how, t in times.items()}
    for how, label in labels.items():
        ordered = sorted(times[how])
        print(f"lookup among {count:,}, {label}: p50 {ordered[len(ordered) // 2]:.2f} ms, "
              f"p95 {p95[how]:.2f} ms ({p95[how] / p95['before']:.2f}x before; target <= 5 ms);"
              f" the copy's source among the candidates {found[how]}/{queries}")
    store.redis.flushdb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", type=int, default=50)
    parser.add_argument("--negatives", type=int, default=500)
    parser.add_argument("--synthetic", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis-url", default=os.environ.get(
        "BENCH_REDIS_URL", "redis://127.0.0.1:6379/10"))
    parser.add_argument("--parts", default="reuse,intake,lookup",
                        help="comma list of reuse, intake, lookup")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    sources, copies, negatives = generate(args)
    if "intake" in parts:
        intake_overhead([*sources[:10], long_clip()], args.repeat)
    if parts & {"reuse", "lookup"}:
        with tempfile.TemporaryDirectory() as folder:
            store = open_store(Path(folder), args.redis_url)
            if "reuse" in parts:
                reuse_part(store, sources, copies, negatives)
            if "lookup" in parts and args.synthetic:
                lookup_at_scale(store, args.synthetic, 200)


def reuse_part(store: FingerprintStore, sources: list[Path], copies: dict[str, list[Path]],
               negatives: list[Path]) -> None:
    started = time.perf_counter()
    everything = [*sources, *negatives, *(p for paths in copies.values() for p in paths)]
    prints = fingerprint_all(everything)
    keyframed = sum(o.fingerprint is not None and o.fingerprint.times is not None
                    for o in prints.values())
    print(f"fingerprinted {len(everything)} clips in {time.perf_counter() - started:.0f} s; "
          f"none for {sum(o.fingerprint is None for o in prints.values())}; from the key "
          f"frames only: {keyframed}")
    known: dict[int, tuple[str, Fingerprint]] = {}
    distinct = [(path.stem, prints[path].fingerprint) for path in [*sources, *negatives]
                if prints[path].fingerprint is not None]
    for name, fp in distinct:
        known[store.save(name, fp)] = (name, fp)
    reuse_rates(store, known, sources, copies, prints)
    false_reuses_by_index(store, known, distinct)
    false_reuses_all_pairs(distinct)
    store.redis.flushdb()
    keyframe_sources(store, sources, copies, negatives, prints)


def keyframe_sources(store: FingerprintStore, sources: list[Path],
                     copies: dict[str, list[Path]], negatives: list[Path],
                     prints: dict[Path, fingerprints.Outcome]) -> None:
    """The same again with each source re-encoded with a key frame a second (its intake
    takes key frames only: a key-frame fingerprint), plus two copies with that GOP too
    (0.5× and the first second trimmed: key-frame fingerprints on both sides)."""
    gop = [gop_copy(source, source.with_name(f"{source.stem}_gop1.mp4"), []) for source in sources]
    kinds = (("scale_half", ["-vf", "scale=iw/2:-2"]), ("trim_1s", ["-ss", "1"]))
    more = {f"{name}_gop1": [gop_copy(source, source.with_name(f"{source.stem}_{name}_gop1.mp4"),
                                      options) for source in sources] for name, options in kinds}
    fresh = fingerprint_all([*gop, *(p for paths in more.values() for p in paths)])
    keyframed = sum(o.fingerprint is not None and o.fingerprint.times is not None
                    for o in fresh.values())
    print(f"sources re-encoded with a key frame a second: {keyframed} of {len(fresh)} "
          f"fingerprints from the key frames only")
    known: dict[int, tuple[str, Fingerprint]] = {}
    prints = {**prints, **fresh, **{source: fresh[g] for source, g in zip(sources, gop,
                                                                           strict=True)}}
    for path in [*sources, *negatives]:
        if prints[path].fingerprint is not None:
            known[store.save(path.stem, prints[path].fingerprint)] = (path.stem,
                                                                      prints[path].fingerprint)
    reuse_rates(store, known, sources, {**copies, **more}, prints)
    store.redis.flushdb()


def gop_copy(source: Path, path: Path, options: list[str]) -> Path:
    if not path.exists():
        trim = options[:2] if options[:1] == ["-ss"] else []
        ffmpeg(*trim, "-i", str(source), *options[len(trim):], "-c:v", "libx264", "-preset",
               "veryfast", "-g", "25", "-c:a", "aac", str(path))
    return path


if __name__ == "__main__":
    sys.exit(main())
