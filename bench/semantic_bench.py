"""Semantic search costs: query embedding, indexing with embeddings, memory, hybrid search.

    .venv/bin/python -m bench.semantic_bench                 # 100k documents
    .venv/bin/python -m bench.semantic_bench --docs 20000

In-process, on the code the search service runs (no HTTP: the service adds the same few
milliseconds to a hybrid search as to a keyword one, measured in `search_bench`):

- query embedding latency: `--queries` real question titles from the shared Stack Exchange
  dumps, one at a time, the process pinned to one core and onnxruntime to one thread;
- indexing with embeddings: `embed_operations` (what the `search-embeddings` consumer does
  per batch: read versions, embed the chunks, write the rows, update the index) over real
  questions and answers (title + body) in batches of 64, on SQLite; docs/s;
- memory per 100k documents: the in-memory index's arrays (int8 vectors and permission
  columns) for `--docs` items of one chunk, scaled to 100k; bytes per row in the database;
- hybrid search at `--docs` documents: the embedded engine (FTS5) holds synthetic posts
  (`search_bench`'s vocabulary, 20 % private to one of 20 groups, the caller a member of
  3) and the index holds one vector per post (random unit vectors: the cost of a matrix
  product does not depend on the values); `--queries` searches of 1-3 words as the caller,
  keyword-only (`engine.search`) and hybrid (`hybrid.search`, with query embedding), p50/p99;
  the similarity floor is lifted so all 100 vector candidates go through the engine (the
  worst case: random vectors would otherwise never pass it).

Writes bench/results/semantic-cost.md and semantic-cost.json; each figure with its goal.
"""

import argparse
import json
import os
import platform
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
from sqlalchemy import create_engine
from sqlmodel import Session, SQLModel

from bench.search_bench import COMMON, MEDIUM, RARE, percentiles, synthetic_post
from deploy.stackexchange import DATA, load_site
from services.search.engines.base import IndexDoc, SearchFilters, TextQuery
from services.search.engines.embedded import EmbeddedEngine, create_schema
from services.search.semantic import hybrid
from services.search.semantic.index import Item, VectorIndex, quantize
from services.search.semantic.model import DEFAULT_MODEL, MODELS, Embedder, model_dir
from services.search.semantic.models import SearchVector
from services.search.semantic.service import Semantic, embed_operations
from services.search.service import doc_from_snapshot
from shared.ids import new_id

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
GOAL_QUERY_P95_MS = 30.0


def load_texts(limit: int) -> list[tuple[str | None, str]]:
    """(title, body) of real questions and answers from both shared sites."""
    texts: list[tuple[str | None, str]] = []
    for name in ("cardano", "quantumcomputing"):
        site = load_site(DATA / name)
        texts += [(q.title, q.text) for q in site.questions.values()]
        texts += [(None, a.text) for a in site.answers.values()]
    random.Random(3).shuffle(texts)
    return texts[:limit]


def query_latency(embedder: Embedder, titles: list[str]) -> dict[str, float]:
    embedder.embed_queries(titles[:5])  # warm up
    samples = []
    for title in titles:
        started = time.perf_counter()
        embedder.embed_queries([title])
        samples.append((time.perf_counter() - started) * 1000)
    ordered = sorted(samples)
    return {
        "p50": round(ordered[len(ordered) // 2], 2),
        "p95": round(ordered[int(len(ordered) * 0.95)], 2),
        "n": len(ordered),
    }


def indexing_throughput(embedder: Embedder, texts: list[tuple[str | None, str]]) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{scratch}/search.db")
        SQLModel.metadata.create_all(engine, tables=[SearchVector.__table__])  # type: ignore[attr-defined]
        semantic = Semantic(embedder, "", VectorIndex(embedder.dimensions, embedder.spec.name))
        semantic.engine = engine
        now = datetime.now(UTC)
        docs = [
            IndexDoc(
                id=new_id(),
                version=1,
                kind="question" if title else "answer",
                title=title,
                body=body,
                tags=(),
                author_id=new_id(),
                group_id=None,
                visibility="public",
                parent_id=None,
                thread_id=None,
                created_at=now,
                updated_at=now,
            )
            for title, body in texts
        ]
        started = time.perf_counter()
        for start in range(0, len(docs), 64):
            embed_operations(semantic, docs[start : start + 64])
        seconds = time.perf_counter() - started
        engine.dispose()
    return round(len(docs) / seconds, 1)


def build_corpus(count: int, scratch: str) -> tuple[Any, VectorIndex, list[UUID]]:
    """`count` synthetic posts in an FTS5 index, one random unit vector each."""
    rng = random.Random(11)
    groups = [new_id() for _ in range(20)]
    authors = [new_id() for _ in range(500)]
    database = create_engine(f"sqlite:///{scratch}/corpus.db")
    index = VectorIndex(384, DEFAULT_MODEL)
    vectors = np.random.default_rng(5).normal(size=(count, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with database.begin() as connection:
        create_schema(connection)
        engine = EmbeddedEngine(connection)
        for start in range(0, count, 5000):
            batch = [synthetic_post(rng, groups, authors) for _ in range(min(5000, count - start))]
            engine.index([doc_from_snapshot(post) for post in batch])
            for offset, post in enumerate(batch):
                item = Item(1, "post", post.author_id, post.group_id, post.visibility == "public")
                index.put(post.content_id, item, quantize(vectors[start + offset][None, :]))
    return database, index, groups[:3]


def search_latency(
    database: Any, semantic: Semantic, groups: list[UUID], queries: int
) -> dict[str, dict[str, float]]:
    rng = random.Random(7)
    texts = [
        " ".join(rng.choice(rng.choice((COMMON, MEDIUM, RARE))) for _ in range(rng.randint(1, 3)))
        for _ in range(queries)
    ]
    keyword: list[float] = []
    fused: list[float] = []
    with Session(database) as session:
        engine = EmbeddedEngine(session.connection())
        for text in texts:
            query = TextQuery.parse(text)
            started = time.perf_counter()
            engine.search(query, SearchFilters(), groups, None, 20)
            keyword.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            hybrid.search(engine, semantic, query, text, SearchFilters(), groups, None, 20)
            fused.append((time.perf_counter() - started) * 1000)
    return {"keyword": percentiles(keyword), "hybrid": percentiles(fused)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--index-docs", type=int, default=1000)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})  # one core, as the goal says
    embedder = Embedder.load(DEFAULT_MODEL, threads=1)
    texts = load_texts(max(args.index_docs, args.queries))
    titles = [title for title, _ in load_texts(5000) if title][: args.queries]
    latency = query_latency(embedder, titles)
    throughput = indexing_throughput(embedder, texts[: args.index_docs])
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory() as scratch:
        database, index, groups = build_corpus(args.docs, scratch)
        per_100k_mb = round(index.nbytes / args.docs * 100_000 / 2**20, 1)
        semantic = Semantic(embedder, "", index)
        # Worst case: every vector candidate passes the similarity floor, so the engine
        # checks and shows all of them (random vectors are never that close to a query).
        hybrid.MIN_SIMILARITY = -1.0
        latencies = search_latency(database, semantic, groups, args.queries)
        database.dispose()
    model = MODELS[DEFAULT_MODEL]
    size_mb = round((model_dir(model) / model.onnx_entry).stat().st_size / 2**20, 1)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load": [round(value, 2) for value in os.getloadavg()],
        "model": {"name": model.name, "artifact": model.artifact, "onnx_mb": size_mb},
        "query_embedding_ms_one_core": latency,
        "indexing_docs_per_s_one_core": throughput,
        "index_memory_mb_per_100k_items": per_100k_mb,
        "database_bytes_per_item": 384 + 120,
        "search_ms": latencies,
        "docs": args.docs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "semantic-cost.json").write_text(json.dumps(result, indent=2) + "\n")
    hy, kw = latencies["hybrid"], latencies["keyword"]
    lines = [
        "# Semantic search: what it costs",
        "",
        f"Date: {result['date']}. Machine: {result['machine']}, load {result['load']}. "
        f"Model: {model.name} ({model.artifact}, {size_mb} MB ONNX). "
        "See `bench/semantic_bench.py` for the protocol.",
        "",
        "| what | measured | goal |",
        "|---|---|---|",
        f"| query embedding, one core, p50 / p95 | {latency['p50']} / {latency['p95']} ms "
        f"| p95 ≤ {GOAL_QUERY_P95_MS:.0f} ms: "
        f"{'met' if latency['p95'] <= GOAL_QUERY_P95_MS else 'NOT met'} |",
        f"| indexing with embeddings (real Q&A, batches of 64, one core) | {throughput} docs/s "
        "| (reported) |",
        f"| in-memory index per 100k items (one chunk each) | {per_100k_mb} MB | (reported) |",
        f"| keyword search at {args.docs:,} docs, p50 / p99 | {kw['p50']} / {kw['p99']} ms "
        "| (for comparison) |",
        f"| hybrid search at {args.docs:,} docs (with query embedding), p50 / p99 "
        f"| {hy['p50']} / {hy['p99']} ms | (reported) |",
        "",
    ]
    (RESULTS / "semantic-cost.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
