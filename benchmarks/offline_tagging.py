"""The offline tagger on a 60 s 720p clip with captions and speech: wall time per stage
and peak RSS, next to the same pipeline without the understanding (visual statistics
only, what the offline tagger did before) measured in the same run.

    python -m benchmarks.offline_tagging [--seconds 60]

Each variant runs in a fresh process (peak RSS is per process: ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from shared.tagging import local
from shared.tagging.base import TagRequest
from shared.video.frames import extract_frames
from shared.video.probe import probe

video, variant = Path(sys.argv[1]), sys.argv[2]
timings = {}
started = time.perf_counter()
media = probe(video)
timings["probe"] = time.perf_counter() - started
started = time.perf_counter()
frames = extract_frames(video, video.parent / f"frames-{variant}", media.duration_s)
timings["frames"] = time.perf_counter() - started
request = TagRequest(video, media, ["vision", "audio", "content", "business"], "zh",
                     tuple(frames.frames), frames.scene_changes)
tagger = local.LocalTagger()
if variant == "visual_only":
    local.understand_text = lambda request, words: local.Understood({}, [], [], [])
    local.hear = lambda request, words: local.Heard(
        type("R", (), {"mean_db": None, "max_db": None, "speech_ratio": None})(), [], [], False)
else:
    from shared.tagging import offline
    real_read, real_listen = offline.read_text, offline.listen
    def timed(name, fn):
        def run(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timings[name] = timings.get(name, 0) + time.perf_counter() - t
        return run
    offline.read_text = timed("ocr", real_read)
    offline.listen = timed("speech", real_listen)
started = time.perf_counter()
result = tagger.tag(request)
timings["tag_total"] = time.perf_counter() - started
timings["total"] = sum(v for k, v in timings.items() if k in ("probe", "frames", "tag_total"))
print(json.dumps({"timings": {k: round(v, 2) for k, v in timings.items()},
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                       / 1024, 1),
                  "frames": len(frames.frames),
                  "texts": len(result.dimensions["content"]["on_screen_text"]),
                  "speech": [t.tag for t in result.dimensions["audio"]["speech"]]}))
"""


def make_clip(folder: Path, seconds: float) -> Path:
    """720p, a caption changing every 10 s, Mandarin speech (espeak-ng) looped under it."""
    from tests.media import CJK_FONT, ffmpeg

    speech = folder / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "cmn", "-w", str(speech),
                    "大家好，今天给大家推荐几款好用的厨房小工具，限时优惠，赶紧下单吧"],
                   check=True)
    captions = ["今天推荐厨房好物", "第一款 多功能切菜器", "限时优惠 ¥99 包邮",
                "第二款 不粘锅", "关注我 每天分享", "点击下方链接购买"]
    filters = []
    for index, text in enumerate(captions):
        path = folder / f"caption{index}.txt"
        path.write_text(text, encoding="utf-8")
        start = index * seconds / len(captions)
        filters.append(f"drawtext=fontfile={CJK_FONT}:textfile={path}:expansion=none:"
                       f"fontsize=56:fontcolor=white:x=(w-tw)/2:y=h-th-80:"
                       f"enable='between(t,{start},{start + seconds / len(captions)})'")
    clip = folder / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:duration={seconds}",
           "-stream_loop", "-1", "-i", str(speech), "-vf", ",".join(filters),
           "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p",
           "-c:a", "aac",
           "-t", str(seconds), str(clip))
    return clip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vtt-offline-") as tmp:
        clip = make_clip(Path(tmp), args.seconds)
        results = {}
        for variant in ("visual_only", "understanding"):
            started = time.perf_counter()
            run = subprocess.run([sys.executable, "-c", CHILD, str(clip), variant, str(ROOT)],
                                 capture_output=True, text=True, check=True)
            results[variant] = json.loads(run.stdout.strip().splitlines()[-1])
            results[variant]["process_s"] = round(time.perf_counter() - started, 2)
            print(variant, json.dumps(results[variant], ensure_ascii=False), flush=True)
    base, full = results["visual_only"], results["understanding"]
    print(f"{args.seconds:g} s 720p clip: total {full['timings']['total']} s "
          f"(visual only {base['timings']['total']} s), peak RSS {full['peak_rss_mb']} MB "
          f"(visual only {base['peak_rss_mb']} MB); targets ≤ 10 s, ≤ 500 MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
