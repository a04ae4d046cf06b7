"""The in-memory vector index and the embedding writes behind it (no services needed)."""

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import numpy as np
import pytest
from sqlmodel import Session, SQLModel, create_engine, select

from services.search.engines.base import Deletion, IndexDoc
from services.search.semantic.index import Item, VectorIndex, quantize
from services.search.semantic.models import SearchVector
from services.search.semantic.service import Semantic, chunks, embed_operations
from services.search.tests.conftest import require_embedding_model
from shared.ids import new_id

DIMENSIONS = 4


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def public(version: int = 1, kind: str = "post", author: UUID | None = None) -> Item:
    return Item(version, kind, author, None, True)


def test_nearest_ranks_by_cosine_and_an_item_by_its_best_chunk() -> None:
    index = VectorIndex(DIMENSIONS, "m")
    near, far = new_id(), new_id()
    index.put(near, public(), quantize(np.stack([unit(0, 1, 0, 0), unit(1, 0.1, 0, 0)])))
    index.put(far, public(), quantize(unit(0.5, 0, 1, 0)[None, :]))
    found = index.nearest(unit(1, 0, 0, 0), [], 10)
    assert [content_id for content_id, _ in found] == [near, far]
    assert found[0][1] == pytest.approx(0.995, abs=0.01)


def test_a_private_groups_item_is_a_candidate_only_for_its_members() -> None:
    index = VectorIndex(DIMENSIONS, "m")
    group, other_group, secret = new_id(), new_id(), new_id()
    index.put(secret, Item(1, "post", None, group, False), quantize(unit(1, 0, 0, 0)[None, :]))
    assert index.nearest(unit(1, 0, 0, 0), [], 10) == []
    assert index.nearest(unit(1, 0, 0, 0), [other_group], 10) == []
    assert [found for found, _ in index.nearest(unit(1, 0, 0, 0), [group], 10)] == [secret]
    assert index.affinity(unit(1, 0, 0, 0), [new_id()], []) == {}


def test_versions_decide_and_a_deletion_keeps_an_older_upsert_out() -> None:
    index = VectorIndex(DIMENSIONS, "m")
    item = new_id()
    index.put(item, public(version=2), quantize(unit(1, 0, 0, 0)[None, :]))
    index.put(item, public(version=1), quantize(unit(0, 1, 0, 0)[None, :]))  # stale: ignored
    assert index.nearest(unit(1, 0, 0, 0), [], 1)[0][1] == pytest.approx(1.0, abs=0.01)
    index.remove(item, 3)
    index.put(item, public(version=2), quantize(unit(1, 0, 0, 0)[None, :]))  # late: ignored
    assert index.nearest(unit(1, 0, 0, 0), [], 10) == []
    assert item not in index


def test_kinds_filter_and_replacing_many_items_compacts_without_losing_any() -> None:
    index = VectorIndex(DIMENSIONS, "m")
    items = [new_id() for _ in range(3000)]
    rng = np.random.default_rng(1)
    for round_number in (1, 2, 3):  # every item replaced twice: most rows become garbage
        for content_id in items:
            vector = unit(*rng.normal(size=DIMENSIONS))
            kind = "question" if content_id.int % 2 else "post"
            index.put(content_id, public(round_number, kind), quantize(vector[None, :]))
    assert len(index) == 3000 and index.rows == 3000
    questions = index.nearest(unit(1, 1, 1, 1), [], 5000, kinds=["question"])
    assert len(questions) == sum(1 for content_id in items if content_id.int % 2)


def test_affinity_is_the_mean_of_each_authors_closest_items() -> None:
    index = VectorIndex(DIMENSIONS, "m")
    expert, novice = new_id(), new_id()
    for vector in (unit(1, 0, 0, 0), unit(1, 0.2, 0, 0), unit(0, 0, 0, 1)):
        index.put(new_id(), public(kind="answer", author=expert), quantize(vector[None, :]))
    index.put(new_id(), public(kind="answer", author=novice), quantize(unit(0, 1, 0, 0)[None, :]))
    scores = index.affinity(unit(1, 0, 0, 0), [expert, novice], [], top=2)
    assert scores[expert] == pytest.approx(0.99, abs=0.02)
    assert scores[novice] == pytest.approx(0.0, abs=0.01)


def test_refresh_follows_what_any_replica_wrote(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'search.db'}")
    SQLModel.metadata.create_all(engine, tables=[SearchVector.__table__])  # type: ignore[attr-defined]
    index = VectorIndex(DIMENSIONS, "m")
    first, second = new_id(), new_id()

    def write(content_id: UUID, **fields: object) -> None:
        with Session(engine) as session:
            session.merge(
                SearchVector(
                    content_id=content_id,
                    public=True,
                    model="m",
                    kind="post",
                    changed_at=datetime.now(UTC),
                    **fields,  # type: ignore[arg-type]
                )
            )
            session.commit()

    write(first, version=1, vectors=quantize(unit(1, 0, 0, 0)[None, :]))
    index.refresh(engine)
    write(second, version=1, vectors=quantize(unit(0.9, 0.1, 0, 0)[None, :]))
    write(first, version=2, deleted=True)
    assert index.refresh(engine) == 2  # the two rows this index lacked, read whole
    assert [content_id for content_id, _ in index.nearest(unit(1, 0, 0, 0), [], 10)] == [second]
    assert index.refresh(engine) == 0  # re-read in the overlap, known already: versions only


def test_chunks_put_the_title_before_each_slice_of_a_long_body() -> None:
    body = " ".join(f"w{n}" for n in range(1000))
    parts = chunks("Title", body)
    assert len(parts) == 4 and all(part.startswith("Title\n") for part in parts)
    assert chunks(None, "  ") == [] and chunks("Only a title", "") == ["Only a title"]


def test_an_event_applied_twice_or_a_new_version_of_the_same_text_is_not_embedded_again(
    tmp_path: Path,
) -> None:
    loaded = require_embedding_model()
    engine = create_engine(f"sqlite:///{tmp_path / 'search.db'}")
    SQLModel.metadata.create_all(engine, tables=[SearchVector.__table__])  # type: ignore[attr-defined]
    semantic = Semantic(loaded.embedder, "", VectorIndex(384, loaded.model), engine)

    def doc(version: int, body: str) -> IndexDoc:
        at = datetime.now(UTC)
        return IndexDoc(
            id=item, version=version, kind="post", title=None, body=body, tags=(),
            author_id=new_id(), group_id=None, visibility="public", parent_id=None,
            thread_id=None, created_at=at, updated_at=at,
        )  # fmt: skip

    item = new_id()
    assert embed_operations(semantic, [doc(1, "Changing the JWT key")]) == 1
    assert embed_operations(semantic, [doc(1, "Changing the JWT key")]) == 0  # a redelivery
    assert embed_operations(semantic, [doc(2, "Changing the JWT key")]) == 0  # same text
    assert embed_operations(semantic, [doc(3, "The cafeteria menu")]) == 1
    assert embed_operations(semantic, [doc(2, "Changing the JWT key")]) == 0  # stale
    empty = new_id()
    at = datetime.now(UTC)
    blank = replace(doc(1, ""), id=empty, created_at=at)  # no title, no body: no vectors
    assert embed_operations(semantic, [blank]) == 1 and empty not in semantic.index  # type: ignore[operator]
    embed_operations(semantic, [Deletion(id=item, version=4)])
    with Session(engine) as session:
        row = session.exec(select(SearchVector).where(SearchVector.content_id == item)).one()
    assert (row.version, row.deleted) == (4, True)
    assert item not in semantic.index  # type: ignore[operator]
