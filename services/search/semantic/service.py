"""Semantic retrieval in the search service: embedding content, and vectors for queries.

Content is embedded by its own consumer (`search-embeddings`), in batches, after and apart
from keyword indexing: a write is keyword-searchable as fast as before, and its vectors
follow a moment later (the backlog is in `/readyz`). Each item's text (title + body) is
cut into chunks the model can read whole; an item scores by its best chunk.

Without the model (not fetched, or turned off with `KNOWFLOW_SEMANTIC_MODEL=off`) the
service runs keyword-only and says so once in the log and in `/readyz`; the embedding
consumer is not created, so once the model is there a new one embeds from the stream's
start.
"""

import asyncio
import functools
import hashlib
import logging
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine, insert, update
from sqlmodel import Session, select

from services.search.engines.base import Deletion, IndexDoc
from services.search.semantic.index import VectorIndex, Vectors, quantize
from services.search.semantic.model import MODELS, Embedder
from services.search.semantic.models import SearchVector
from shared.db import in_list
from shared.ids import utcnow
from shared.schedule import run_every
from shared.settings import Settings
from shared.tasks import stop_tasks

log = logging.getLogger(__name__)

OFF = "off"
EMBEDDINGS = "search-embeddings"  # the consumer that embeds content
# Words per chunk: with the title in front, a chunk stays within the model's 256 tokens.
CHUNK_WORDS = 160
MAX_CHUNKS = 4  # a long article is found by its first ~640 words
# At least this share of a query's words (about one in three) must be whole words of the
# model's vocabulary for it to be searched by meaning too (see `Embedder.known_share`).
MIN_KNOWN_SHARE = 0.3
_SPACE = re.compile(r"\s+")


def chunks(title: str | None, body: str) -> list[str]:
    """The texts an item is embedded as: its title before each slice of its body."""
    words = _SPACE.split(body.strip()) if body.strip() else []
    head = f"{title.strip()}\n" if title and title.strip() else ""
    if not words:
        return [head.strip()] if head.strip() else []
    return [
        head + " ".join(words[start : start + CHUNK_WORDS])
        for start in range(0, min(len(words), CHUNK_WORDS * MAX_CHUNKS), CHUNK_WORDS)
    ]


def digest_of(texts: Sequence[str]) -> str:
    return hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:32]


@dataclass
class Semantic:
    """The model (or why there is none) and the in-memory index every query reads."""

    embedder: Embedder | None
    reason: str  # why semantic retrieval is off; empty when on
    index: VectorIndex | None
    engine: Engine | None = None  # the service's database, bound at start

    @property
    def enabled(self) -> bool:
        return self.embedder is not None and self.index is not None

    @property
    def model(self) -> str:
        return self.embedder.spec.name if self.embedder else ""

    def query_vector(self, text: str) -> Vectors | None:
        """The query's vector, or None where retrieval by meaning would be noise: without the
        model, or for a query of words the model does not know (codes, names, ids)."""
        if self.embedder is None or self.embedder.known_share(text) < MIN_KNOWN_SHARE:
            return None
        return _query_vector(self.embedder, text)

    def refresh(self) -> None:
        if self.index is not None and self.engine is not None:
            self.index.refresh(self.engine)

    def status(self, backlog: int | None) -> dict[str, Any]:
        if not self.enabled:
            return {"state": "off", "reason": self.reason, "retrieval": "keyword only"}
        assert self.index is not None
        return {
            "state": "on",
            "model": self.model,
            "items": len(self.index),
            "vectors": self.index.rows,
            "backlog": backlog,
        }


@functools.lru_cache(maxsize=512)
def _query_vector(embedder: Embedder, text: str) -> Vectors:
    """Typing a title asks again and again: the same text is embedded once."""
    vector: Vectors = embedder.embed_queries([text])[0]
    vector.setflags(write=False)
    return vector


@functools.cache
def _load(name: str, cache: Path, threads: int) -> Embedder:
    """One model per process, shared by every app and thread (onnxruntime runs are safe)."""
    embedder = Embedder.load(name, cache, threads)
    log.info("semantic search on: model %s", name)
    return embedder


# One per app (its database and index), found by the app's settings: the consumers are
# made from the settings alone. The model itself is loaded once per process (`_load`).
_apps: dict[int, Semantic] = {}


def semantic_for(settings: Settings) -> Semantic:
    """The semantic retrieval of the app these settings configure."""
    key = id(settings)
    if key not in _apps:
        _apps[key] = _semantic(settings.semantic_model, settings.semantic_threads, settings.cache)
        weakref.finalize(settings, _apps.pop, key, None)
    return _apps[key]


def _semantic(name: str, threads: int, cache: Path) -> Semantic:
    if name.lower() in {OFF, "", "none"}:
        return Semantic(None, "turned off (KNOWFLOW_SEMANTIC_MODEL=off)", None)
    if name not in MODELS:
        reason = f"unknown model {name!r} (known: {', '.join(sorted(MODELS))})"
        _warn_once(reason)
        return Semantic(None, reason, None)
    try:
        embedder = _load(name, cache, threads)
    except Exception as exc:  # not fetched, or unreadable: keyword search still works
        _warn_once(str(exc))
        return Semantic(None, str(exc), None)
    return Semantic(embedder, "", VectorIndex(embedder.dimensions, name))


@functools.cache
def _warn_once(reason: str) -> None:
    log.warning("semantic search is off: %s; keyword search works", reason)


def embed_operations(semantic: Semantic, operations: Sequence[IndexDoc | Deletion]) -> int:
    """Store vectors for upserts and tombstones for deletions, each once per version; how
    many items were embedded (items already current are skipped)."""
    assert semantic.engine is not None, "bind the service's database first"
    if semantic.embedder is None:
        return 0
    ids = [operation.id for operation in operations]
    with Session(semantic.engine) as session:
        stored = {
            row.content_id: row
            for row in session.exec(
                select(SearchVector).where(in_list(SearchVector.content_id, ids))
            )
        }
    latest: dict[Any, IndexDoc | Deletion] = {}
    for operation in operations:  # the newest operation per item in this batch wins
        current = latest.get(operation.id)
        if current is None or operation.version >= current.version:
            latest[operation.id] = operation
    rows: list[SearchVector] = []
    to_embed: list[tuple[SearchVector, list[str]]] = []
    now = utcnow()
    for operation in latest.values():
        before = stored.get(operation.id)
        if before is not None and before.version > operation.version:
            continue  # an older event, replayed or late
        if (
            before is not None
            and before.version == operation.version
            and (before.deleted or before.model == semantic.model)
        ):
            continue  # applied already
        if isinstance(operation, Deletion):
            rows.append(
                SearchVector(
                    content_id=operation.id, version=operation.version, deleted=True, changed_at=now
                )
            )
            continue
        texts = chunks(operation.title, operation.body)
        row = SearchVector(
            content_id=operation.id,
            version=operation.version,
            kind=operation.kind,
            author_id=operation.author_id,
            group_id=operation.group_id,
            public=operation.visibility == "public",
            created_at=operation.created_at,
            model=semantic.model,
            digest=digest_of(texts),
            changed_at=now,
        )
        if before is not None and before.digest == row.digest and before.model == row.model:
            row.vectors = before.vectors  # only the metadata changed (an accepted answer…)
        else:
            to_embed.append((row, texts))
        rows.append(row)
    # One call: the embedder groups texts of similar length into small runs itself.
    vectors = semantic.embedder.embed_passages([t for _, texts in to_embed for t in texts])
    position = 0
    for row, texts in to_embed:
        row.vectors = quantize(vectors[position : position + len(texts)])
        position += len(texts)
    if not rows:
        return 0
    # Two statements for the batch, not a merge per row (a read and a write each: a
    # quarter of the service's CPU while posts streamed in). A replica that inserted one
    # of these rows meanwhile fails the insert, and the whole batch is retried.
    values = [row.model_dump() for row in rows]
    with Session(semantic.engine) as session:
        if new := [value for value in values if value["content_id"] not in stored]:
            session.execute(insert(SearchVector), new)
        if changed := [value for value in values if value["content_id"] in stored]:
            session.execute(update(SearchVector), changed)
        session.commit()
    if semantic.index is not None:
        semantic.index.apply(rows)  # this replica sees them at once; others on refresh
    return len(to_embed)


# The in-memory index follows the database this often (other replicas' writes; its own
# consumer's writes are applied at once).
REFRESH_SECONDS = 1.0


async def start(app: FastAPI) -> None:
    """Bind to the service's database, load every stored vector, then follow new ones."""
    semantic = semantic_for(app.state.settings)
    semantic.engine = app.state.engine
    app.state.semantic = semantic
    app.state.semantic_refresh = None
    if semantic.enabled:
        await asyncio.to_thread(semantic.refresh)
        app.state.semantic_refresh = asyncio.create_task(
            run_every(REFRESH_SECONDS, semantic.refresh, name="semantic index refresh"),
            name="semantic-refresh",
        )


async def stop(app: FastAPI) -> None:
    task: asyncio.Task[None] | None = getattr(app.state, "semantic_refresh", None)
    if task is not None:
        await stop_tasks([task])


async def details(app: FastAPI) -> dict[str, Any]:
    """`/readyz`'s word on semantic search: on or off (and why), and the embedding backlog."""
    semantic: Semantic | None = getattr(app.state, "semantic", None)
    if semantic is None:
        return {}
    backlog = None
    bus = getattr(app.state, "bus", None)
    if semantic.enabled and bus is not None:
        try:
            info = await bus.js.consumer_info(bus.stream, EMBEDDINGS)
            backlog = (info.num_pending or 0) + (info.num_ack_pending or 0)
        except Exception:  # the bus is down: /readyz says so in its checks
            log.debug("no consumer info for %s", EMBEDDINGS)
    return {"semantic": semantic.status(backlog)}
