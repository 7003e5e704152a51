"""Search in words and by meaning (issue 38): 100,000 passages (transcript segments,
summaries of generated spoken results) in the passage index, then `kind=moments` queries
through `TagIndex.search` — the API's path — in each mode, and their p50/p95, beside the
query shape search had before (every match counted: `track_total_hits: true`) in the same
run; the embedding fill job's rate over the Gemini stand-in; the embedding cost per video
and per 1,000 queries at Google's price; and the output tokens a minute of transcript
takes, from the stand-in's answer for a 60 s clip.

    python -m benchmarks.search_moments [--passages 100000] [--queries 300] [--fill 5000]

Runs osmem-server (in-memory, OpenSearch-compatible) on 127.0.0.1; the elasticsearch
client sends plain JSON (ES_COMPAT_HEADERS=false). osmem stores vectors but runs no kNN
query: `semantic` is refused there (counted, not timed) and `hybrid` answers by keyword
after asking the stand-in for the query's vector — what it costs is what is timed.
Target: p95 ≤ 150 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime

import redis

from shared.accounts.importer import AccountEntry, import_accounts
from shared.accounts.pool import AccountPool
from shared.errors import NotConfigured
from shared.search import passages
from shared.search.client import build_search_client
from shared.search.embeddings import EmbeddingConfig, GeminiEmbedder, estimate_tokens
from shared.search.fill import fill_embeddings
from shared.search.index import TagIndex
from shared.search.moments import MOMENT_FIELDS
from shared.search.query import SearchQuery
from shared.tagging.result import Technical, TranscriptSegment
from shared.tagging.transcript import TOKENS_PER_MINUTE
from shared.tasks.models import Task
from tests.gemini_standin import TRANSLATIONS, GeminiStandIn, speech

HANZI = ("保温杯续航口红面膜火锅露营跑步相机耳机咖啡宝辅食猫粮沙发收纳键盘手充电防晒连衣裙优惠下单"
         "链接教程步骤味道颜色价格质量推荐新品上市关注点赞分享直播间福利秒杀限时包邮")
SYLLABLES = ("ba", "ca", "de", "fi", "go", "hu", "ja", "ke", "lo", "mi", "ne", "po", "ra",
             "se", "ti", "vo", "wa", "ze", "tor", "ing", "ness", "er", "al", "ly")
VOCABULARY_RNG = random.Random(7)
WORDS_ZH = sorted({a + b for a in HANZI for b in HANZI if a != b})
WORDS_EN = sorted({x + y + z for x in SYLLABLES for y in SYLLABLES for z in SYLLABLES})
"""About 3,900 Chinese two-character words and 13,800 English-like words; drawn with
Zipf's law (a word's weight 1/rank), as words are in speech."""
WEIGHTS_ZH = [1 / rank for rank in range(1, len(WORDS_ZH) + 1)]
WEIGHTS_EN = [1 / rank for rank in range(1, len(WORDS_EN) + 1)]
VOCABULARY_RNG.shuffle(WORDS_ZH)
VOCABULARY_RNG.shuffle(WORDS_EN)
"""USD per million input tokens of gemini-embedding-001 (Google's list price: the Gemini API
pricing page and the model's launch post, developers.googleblog.com, "Gemini Embedding
now generally available in the Gemini API", 2025)."""
REDIS_URL = "redis://127.0.0.1:6379/3"
SEGMENTS_PER_TASK = 40
"""A 2-minute spoken video: a segment every 3 s."""
QUERY_PARTS = 2
"""Words per query (a short phrase a user types)."""


def words(rng: random.Random, count: int, chinese: bool) -> list[str]:
    return rng.choices(WORDS_ZH if chinese else WORDS_EN,
                       WEIGHTS_ZH if chinese else WEIGHTS_EN, k=count)


def sentence(rng: random.Random) -> str:
    """A spoken sentence: 7 Chinese words (14 characters) or 12 English ones."""
    if rng.random() < 0.5:
        return "".join(words(rng, 4, True)) + "，" + "".join(words(rng, 3, True))
    return " ".join(words(rng, 12, False))


def generated_tasks(count: int, rng: random.Random) -> list[Task]:
    """Completed tasks whose results hold SEGMENTS_PER_TASK transcript segments."""
    from shared.tagging.result import TagResult

    now = datetime.now(UTC)
    tasks = []
    for n in range(count):
        result = TagResult(
            tags=words(rng, 5, True), dimensions={}, summary=sentence(rng),
            technical=Technical(duration_s=120.0, has_audio=True, container="mp4"),
            language="zh", provider="gemini", model="m", spoken_language="zh",
            transcript=[TranscriptSegment(start_s=3 * i, end_s=3 * i + 2.8, speaker="AB"[i % 2],
                                          text=sentence(rng))
                        for i in range(SEGMENTS_PER_TASK)])
        tasks.append(Task(task_id=str(uuid.uuid4()), status="completed", attempts=1,
                          url=f"https://cdn.example.com/{n}.mp4", platform="rpa", env="develop",
                          dimensions=["audio"], language="zh", created_at=now, updated_at=now,
                          result=result))
    return tasks


def index_passages(index: TagIndex, total: int, rng: random.Random) -> float:
    """Seconds to index `total` passages (one summary + the segments per task)."""
    per_task = SEGMENTS_PER_TASK + 1
    tasks = generated_tasks(total // per_task + 1, rng)
    started = time.perf_counter()
    for first in range(0, len(tasks), 200):
        index.bulk_index(tasks[first:first + 200], chunk_size=1000)
    index.refresh()
    return time.perf_counter() - started


def queries(count: int, rng: random.Random) -> list[str]:
    return [" ".join(words(rng, QUERY_PARTS, rng.random() < 0.5)) for _ in range(count)]


def latencies(index: TagIndex, texts: list[str], mode: str) -> tuple[list[float], int]:
    """Milliseconds per query through TagIndex.search, and how many were refused."""
    timings, refused = [], 0
    for q in texts:
        query = SearchQuery.model_validate({"kind": "moments", "q": q, "limit": 20,
                                            "mode": mode}, context={"semantic": True})
        started = time.perf_counter()
        try:
            page = index.search(query)
        except NotConfigured:
            refused += 1
            continue
        timings.append((time.perf_counter() - started) * 1000)
        assert page.moments, q
    return timings, refused


def before_latencies(index: TagIndex, texts: list[str]) -> list[float]:
    """The query search sent before this issue's change: every match counted."""
    timings = []
    for q in texts:
        body = {"query": {"bool": {"filter": [], "must": [passages.match(q)]}}, "size": 20,
                "track_total_hits": True, "_source": MOMENT_FIELDS}
        started = time.perf_counter()
        index.client.search(index=index.passage_index("develop"), **body)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def figures(timings: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(timings, n=100)
    return cuts[49], cuts[94]


def embedding_costs(embedder: GeminiEmbedder, tasks: list[Task],
                    texts: list[str]) -> tuple[float, float, float]:
    """USD per video (its passages embedded once), tokens per video, USD per 1,000 queries
    (the embedder's own estimate and price)."""
    per_video = [[p["text"] for p in passages.passages(task)] for task in tasks]
    tokens = statistics.mean(sum(estimate_tokens(text) for text in video) for video in per_video)
    cost = statistics.mean(embedder.cost_usd(video) for video in per_video)
    return cost, tokens, embedder.cost_usd(texts) * 1000 / len(texts)


def transcript_tokens() -> tuple[int, int]:
    """Output tokens (at 4 characters a token for English, 1 per Chinese character: the
    ratios Google's token guide gives) of the stand-in's transcript of a 60 s clip, without
    and with an English translation."""
    plain = json.dumps(speech(0, 60, False), ensure_ascii=False)
    translated = json.dumps(speech(0, 60, True), ensure_ascii=False)

    def tokens(text: str) -> int:
        cjk = sum(1 for char in text if ord(char) >= 0x2E80)
        return cjk + (len(text) - cjk) // 4

    assert TRANSLATIONS
    return tokens(plain), tokens(translated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--fill", type=int, default=5000,
                        help="passages the fill job embeds through the stand-in (timed)")
    args = parser.parse_args(argv)
    from osmem_server import OsmemServer

    rng = random.Random(38)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    import_accounts(client, [AccountEntry(api_key=f"AIzaSyBENCH{n:030d}", minute_limit=100_000,
                                          daily_limit=1_000_000) for n in range(4)])
    standin = GeminiStandIn().start()
    embedder = GeminiEmbedder(AccountPool(client), EmbeddingConfig(endpoint=standin.base_url))
    texts = queries(args.queries, rng)
    with OsmemServer.start() as server:
        index = TagIndex(build_search_client(server.url, compat_headers=False, timeout_s=120),
                         f"bench-{uuid.uuid4().hex[:6]}", embedder=embedder)
        seconds = index_passages(index, args.passages, rng)
        count = index.client.count(index=index.passage_index("develop"))["count"]
        print(f"indexed {count:,} passages in {seconds:.1f} s ({count / seconds:,.0f}/s)")
        started = time.perf_counter()
        filled = fill_embeddings(index, args.fill)
        fill_s = time.perf_counter() - started
        print(f"fill job: {filled.embedded:,} passages embedded (stand-in) and written in "
              f"{fill_s:.1f} s ({filled.embedded / fill_s:,.0f}/s); "
              f"{filled.missing_before - filled.embedded:,} left for later runs")
        index.refresh()
        before = figures(before_latencies(index, texts))
        runs = {mode: latencies(index, texts, mode) for mode in ("keyword", "hybrid",
                                                                   "semantic")}
    standin.stop()
    print(f"{args.queries} queries of {QUERY_PARTS} words, limit 20, over {count:,} passages:")
    print(f"  before (track_total_hits: true): p50 {before[0]:.1f} ms, p95 {before[1]:.1f} ms")
    for mode, (timings, refused) in runs.items():
        if not timings:
            print(f"  {mode}: refused by the server {refused} times of {args.queries} (no kNN)")
            continue
        p50, p95 = figures(timings)
        print(f"  {mode}: p50 {p50:.1f} ms, p95 {p95:.1f} ms ({p95 / before[1]:.2f}x before's "
              f"p95)" + (f", {refused} refused" if refused else ""))
    video, tokens, thousand = embedding_costs(embedder, generated_tasks(200, random.Random(1)),
                                              texts)
    print(f"embedding cost at ${embedder.config.price_per_million}/1M tokens: "
          f"${video:.6f} per video "
          f"(~{tokens:,.0f} tokens: summary + {SEGMENTS_PER_TASK} segments), "
          f"${thousand:.6f} per 1,000 queries")
    plain, translated = transcript_tokens()
    print(f"transcript of 60 s of dense speech (stand-in: 20 segments, 2 voices): ~{plain} "
          f"output tokens a minute, ~{translated} with a translation; budgeted "
          f"{TOKENS_PER_MINUTE} (+450 translated)")
    return 0 if figures(runs["keyword"][0])[1] <= 150 else 1


if __name__ == "__main__":
    sys.exit(main())
