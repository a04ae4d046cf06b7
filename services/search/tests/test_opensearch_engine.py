"""The OpenSearch engine on a real node, without the bus: versions, tombstones, bulk results."""

from collections.abc import Collection, Iterator, Mapping
from typing import Any
from uuid import UUID

import pytest

from services.search.engines.base import (
    Deletion,
    ExpertQuery,
    IndexDoc,
    SearchFilters,
    Signals,
    SimilarQuery,
    TextQuery,
)
from services.search.engines.opensearch import BulkItemError, OpenSearchEngine
from services.search.engines.opensearch_schema import INDEX_SETTINGS, MAPPINGS, connect
from services.search.service import doc_from_snapshot
from services.search.tests.conftest import post, question
from shared.events.failures import is_transient
from shared.ids import new_id
from shared.testing.opensearch import opensearch_prefix


@pytest.fixture
def engine() -> Iterator[OpenSearchEngine]:
    with opensearch_prefix() as (url, prefix):
        engine = OpenSearchEngine(connect(url), prefix)
        engine.ensure_index()
        yield engine


def doc(text: str, **fields: Any) -> IndexDoc:
    return doc_from_snapshot(post(body=text, **fields))


def found(engine: OpenSearchEngine, text: str) -> list[str]:
    engine.client.indices.refresh(index=engine.alias)
    page = engine.search(TextQuery.parse(text), SearchFilters(), [], None, 100)
    return [str(hit.id) for hit in page.hits]


def topic(word: str) -> ExpertQuery:
    return ExpertQuery.of(TextQuery.parse(word))


class RecordingThanks:
    """A signals lookup that gives every item it is asked about 10 thanks, and remembers."""

    def __init__(self) -> None:
        self.asked: set[UUID] = set()

    def __call__(self, content_ids: Collection[UUID]) -> Mapping[UUID, Signals]:
        self.asked.update(content_ids)
        return dict.fromkeys(content_ids, Signals(thanks=10))


def test_the_index_is_created_behind_the_alias_with_strict_mappings(
    engine: OpenSearchEngine,
) -> None:
    (name,) = engine.indices_of(engine.alias)
    assert name.startswith(f"{engine.alias}-")
    mapping = engine.client.indices.get_mapping(index=name)[name]["mappings"]
    assert mapping["dynamic"] == "strict"
    assert mapping["properties"]["tags"]["type"] == "keyword"
    assert mapping["properties"]["title"]["fields"]["raw"]["type"] == "keyword"
    assert engine.ensure_index() == name  # a second start reuses it


def test_a_version_conflict_is_reported_as_applied_and_keeps_the_newer_text(
    engine: OpenSearchEngine,
) -> None:
    newer = doc("conflict newer text", version=2)
    older = doc("conflict older text", version=1, content_id=newer.id)
    assert engine.apply([newer]) == [None]
    assert engine.apply([older]) == [None]  # 409 from OpenSearch: already have newer
    assert engine.apply([newer]) == [None]  # a replay at the same version too
    assert found(engine, "newer") == [str(newer.id)]
    assert found(engine, "older") == []


def test_tombstones_outlive_gc_deletes_so_a_late_create_stays_deleted(
    engine: OpenSearchEngine,
) -> None:
    (name,) = engine.indices_of(engine.alias)
    # A real delete's version is forgotten after gc_deletes; a tombstone document is not.
    engine.client.indices.put_settings(index=name, body={"index": {"gc_deletes": "0s"}})
    item = doc("ghostly item", version=1)
    engine.apply([item])
    engine.apply([Deletion(id=item.id, version=2)])
    engine.client.indices.refresh(index=name)
    engine.client.indices.flush(index=name)

    assert engine.apply([item]) == [None]
    assert engine.apply([doc("ghostly item", version=2, content_id=item.id)]) == [None]

    assert found(engine, "ghostly") == []
    stored = engine.client.get(index=engine.alias, id=str(item.id))
    assert stored["_source"] == {"id": str(item.id), "version": 2, "deleted": True}
    assert stored["_version"] == 2
    engine.apply([doc("ghostly item back", version=3, content_id=item.id)])
    assert found(engine, "ghostly") == [str(item.id)]


def test_a_document_the_mapping_refuses_fails_alone_in_its_bulk_request(
    engine: OpenSearchEngine,
) -> None:
    good, other = doc("bulk good one"), doc("bulk good two")
    # A keyword longer than Lucene's 32766-byte term limit cannot be indexed.
    bad = doc("bulk bad one", tags=["x" * 40_000])

    results = engine.apply([good, bad, other])

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], BulkItemError)
    assert set(found(engine, "bulk")) == {str(good.id), str(other.id)}
    with pytest.raises(BulkItemError):
        engine.index([bad])


def test_a_write_blocked_index_answers_each_item_as_transient_not_as_refused_data(
    engine: OpenSearchEngine,
) -> None:
    # What a node past its flood-stage disk watermark does: every write answers 429.
    (index,) = engine.indices_of(engine.alias)
    block = {"index.blocks.read_only_allow_delete": True}
    engine.client.indices.put_settings(index=index, body=block)
    try:
        results = engine.apply([doc("blocked write one"), doc("blocked write two")])
    finally:
        engine.client.indices.put_settings(
            index=index, body={"index.blocks.read_only_allow_delete": None}
        )
    assert all(isinstance(result, BulkItemError) for result in results)
    assert all(is_transient(result) for result in results if result is not None)
    bad = doc("bulk bad again", tags=["x" * 40_000])
    (refused,) = engine.apply([bad])
    assert refused is not None and not is_transient(refused)


def test_user_text_is_escaped_and_markers_cannot_forge_highlights(
    engine: OpenSearchEngine,
) -> None:
    engine.apply([doc("forged \x02bold\x03 <mark>x</mark> marker")])
    engine.client.indices.refresh(index=engine.alias)
    (hit,) = engine.search(TextQuery.parse("marker"), SearchFilters(), [], None, 10).hits
    assert hit.snippet.count("<mark>") == 1
    assert "&lt;mark&gt;x&lt;/mark&gt;" in hit.snippet


def test_a_stale_delete_does_not_remove_a_newer_version(engine: OpenSearchEngine) -> None:
    item = doc("sturdy item", version=3)
    engine.apply([item])
    assert engine.apply([Deletion(id=item.id, version=2)]) == [None]
    assert found(engine, "sturdy") == [str(item.id)]


def test_thanks_are_asked_for_visible_candidates_only(engine: OpenSearchEngine) -> None:
    group = new_id()
    public = doc("consul public notes")
    private = doc("consul private notes", group_id=group)
    engine.index([public, private])
    engine.client.indices.refresh(index=engine.alias)
    thanks = RecordingThanks()

    (expert,) = engine.experts(topic("consul"), [], 10, signals=thanks)

    assert thanks.asked == {public.id}
    assert expert.user_id == public.author_id and expert.thanks == 10
    assert [item.thanks for item in expert.evidence] == [10]


def test_an_index_made_before_question_fields_gains_them_at_start() -> None:
    with opensearch_prefix() as (url, prefix):
        engine = OpenSearchEngine(connect(url), prefix)
        old_mappings = {
            **MAPPINGS,
            "properties": {
                name: field
                for name, field in MAPPINGS["properties"].items()  # type: ignore[attr-defined]
                if name not in ("accepted_answer_id", "duplicate_of")
            },
        }
        engine.client.indices.create(
            index=engine.new_index_name(),
            body={
                "settings": INDEX_SETTINGS,
                "mappings": old_mappings,
                "aliases": {engine.alias: {}},
            },
        )
        engine.ensure_index()
        asked = question(title="Old index", body="upgraded", accepted_answer_id=new_id())
        engine.index([doc_from_snapshot(asked)])
        engine.client.indices.refresh(index=engine.alias)

        (hit,) = engine.similar_questions(SimilarQuery.parse("old index"), [], 5)

    assert hit.id == asked.content_id and hit.has_accepted_answer
