"""The FTS5 engine on a real SQLite database, without the bus: edge cases of its contract."""

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Connection, text

from services.search.engines import embedded
from services.search.engines.base import (
    Deletion,
    ExpertQuery,
    IndexDoc,
    SearchFilters,
    Signals,
    SimilarQuery,
    TextQuery,
)
from services.search.engines.embedded import (
    BM25,
    EmbeddedEngine,
    create_schema,
)
from services.search.service import doc_from_snapshot
from services.search.tests.conftest import post, question, reply
from shared.db import make_engine
from shared.errors import BadRequest
from shared.ids import new_id, utcnow
from shared.pagination import encode_cursor


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[Connection]:
    engine = make_engine(f"sqlite:///{tmp_path / 'engine.db'}")
    with engine.begin() as connection:
        create_schema(connection)
        yield connection
    engine.dispose()


def found(engine: EmbeddedEngine, text: str, groups: Sequence[UUID] = ()) -> list[str]:
    page = engine.search(TextQuery.parse(text), SearchFilters(), groups, None, 100)
    return [str(hit.id) for hit in page.hits]


def doc(text: str, **fields: Any) -> IndexDoc:
    return doc_from_snapshot(post(body=text, **fields))


def no_thanks(_content_ids: Collection[UUID]) -> Mapping[UUID, Signals]:
    return {}


def topic(word: str) -> ExpertQuery:
    return ExpertQuery.of(TextQuery.parse(word))


class RecordingThanks:
    """A signals lookup that gives every item it is asked about 10 thanks, and remembers."""

    def __init__(self) -> None:
        self.asked: set[UUID] = set()

    def __call__(self, content_ids: Collection[UUID]) -> Mapping[UUID, Signals]:
        self.asked.update(content_ids)
        return dict.fromkeys(content_ids, Signals(thanks=10))


def test_a_delete_of_an_unseen_item_stops_its_late_create(connection: Connection) -> None:
    engine = EmbeddedEngine(connection)
    late = doc("late arrival", version=1)
    engine.delete([Deletion(id=late.id, version=2)])
    engine.index([late])
    assert found(engine, "arrival") == []


def test_an_upsert_at_the_deleted_version_stays_deleted_but_a_newer_one_restores(
    connection: Connection,
) -> None:
    engine = EmbeddedEngine(connection)
    item = doc("restorable item", version=1)
    engine.index([item])
    engine.delete([Deletion(id=item.id, version=2)])
    engine.index([doc("restorable item", version=2, content_id=item.id)])
    assert found(engine, "restorable") == []
    engine.index([doc("restorable item", version=3, content_id=item.id)])
    assert found(engine, "restorable") == [str(item.id)]


def test_a_stale_delete_does_not_remove_a_newer_version(connection: Connection) -> None:
    engine = EmbeddedEngine(connection)
    item = doc("sturdy item", version=3)
    engine.index([item])
    engine.delete([Deletion(id=item.id, version=2)])
    assert found(engine, "sturdy") == [str(item.id)]


def test_a_batch_ends_as_its_operations_applied_one_at_a_time(tmp_path: Path) -> None:
    kept, gone, late, stale, twice = (new_id() for _ in range(5))
    ops: list[IndexDoc | Deletion] = [
        doc("kept first words", version=1, content_id=kept, tags=["alpha"]),
        doc("gone words", version=1, content_id=gone),
        Deletion(id=late, version=2),  # deleted before its create arrives
        doc("stale newer words", version=3, content_id=stale),
        doc("kept second words", version=2, content_id=kept, tags=["beta"]),
        Deletion(id=gone, version=2),
        doc("late words", version=1, content_id=late),
        doc("stale older words", version=2, content_id=stale),
        doc("twice words", version=1, content_id=twice),
        doc("twice words", version=1, content_id=twice),  # a replay
    ]
    states = []
    for name, batches in (("batch", [ops[:4], ops[4:]]), ("one", [[op] for op in ops])):
        engine = make_engine(f"sqlite:///{tmp_path / name}.db")
        with engine.begin() as connection:
            create_schema(connection)
            embedded = EmbeddedEngine(connection)
            embedded.index([doc("already here", version=1, content_id=gone)])
            for batch in batches:
                embedded.apply(batch)
            states.append(
                (
                    sorted(
                        found(embedded, f"{word}")
                        for word in ("kept", "first", "second", "gone", "late", "stale", "older")
                    ),
                    connection.execute(
                        text(
                            "SELECT d.id, d.version, d.deleted, d.tags, f.body,"
                            " (SELECT group_concat(tag) FROM search_document_tag AS t"
                            "  WHERE t.doc_seq = d.seq) FROM search_document AS d"
                            " LEFT JOIN search_fts AS f ON f.rowid = d.seq ORDER BY d.id"
                        )
                    ).all(),
                )
            )
        engine.dispose()
    assert states[0] == states[1]
    rows = {row[0]: row[1:] for row in states[0][1]}
    assert rows[str(kept)] == (2, 0, '["beta"]', "kept second words", "beta")
    assert rows[str(gone)][:2] == (2, 1) and rows[str(gone)][3] is None
    assert rows[str(late)][:2] == (2, 1)
    assert rows[str(stale)][0] == 3 and rows[str(stale)][3] == "stale newer words"
    assert rows[str(twice)][:2] == (1, 0)


def test_a_visible_reply_in_a_thread_the_caller_cannot_see_is_no_evidence(
    connection: Connection,
) -> None:
    engine = EmbeddedEngine(connection)
    group = new_id()
    root = post(title="Vault rotation", body="how to rotate vault secrets", group_id=group)
    # A public reply to a private thread (inconsistent upstream data) must still not leak.
    answer = reply(thread=root, body="with a cron job")
    answer = answer.model_copy(update={"group_id": None, "visibility": "public"})
    engine.index([doc_from_snapshot(root), doc_from_snapshot(answer)])
    assert engine.experts(topic("vault"), [], 10, signals=no_thanks) == []
    members_view = engine.experts(topic("vault"), [group], 10, signals=no_thanks)
    assert {expert.user_id for expert in members_view} == {root.author_id, answer.author_id}


def test_match_markers_in_content_cannot_forge_highlights(connection: Connection) -> None:
    engine = EmbeddedEngine(connection)
    engine.index([doc("forged \x02bold\x03 <mark>x</mark> marker")])
    (hit,) = engine.search(TextQuery.parse("marker"), SearchFilters(), [], None, 10).hits
    assert hit.snippet.count("<mark>") == 1
    assert "&lt;mark&gt;x&lt;/mark&gt;" in hit.snippet


def test_naive_date_filters_are_read_as_utc(connection: Connection) -> None:
    engine = EmbeddedEngine(connection)
    item = doc("dated item", created_at=utcnow() - timedelta(days=2))
    engine.index([item])
    since = (utcnow() - timedelta(days=3)).replace(tzinfo=None)
    page = engine.search(TextQuery.parse("dated"), SearchFilters(since=since), [], None, 10)
    assert [hit.id for hit in page.hits] == [item.id]


def test_thanks_are_asked_for_visible_candidates_only(connection: Connection) -> None:
    engine = EmbeddedEngine(connection)
    group = new_id()
    public = doc("consul public notes")
    private = doc("consul private notes", group_id=group)
    engine.index([public, private])
    thanks = RecordingThanks()

    (expert,) = engine.experts(topic("consul"), [], 10, signals=thanks)

    assert thanks.asked == {public.id}
    assert expert.user_id == public.author_id and expert.thanks == 10
    assert [item.thanks for item in expert.evidence] == [10]


def test_an_index_made_before_question_fields_gains_them_at_start(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as connection:
        # The table as the first release created it, without the question columns.
        connection.execute(
            text(
                """CREATE TABLE search_document (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                version INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, kind TEXT,
                title TEXT, author_id TEXT, group_id TEXT, visibility TEXT, parent_id TEXT,
                thread_id TEXT, tags TEXT NOT NULL DEFAULT '[]', created_at TEXT,
                updated_at TEXT)"""
            )
        )
        create_schema(connection)
        create_schema(connection)  # every start runs it: idempotent
        asked = question(title="Old index", body="upgraded", accepted_answer_id=new_id())
        EmbeddedEngine(connection).index([doc_from_snapshot(asked)])
        (hit,) = EmbeddedEngine(connection).similar_questions(
            SimilarQuery.parse("old index"), [], 5
        )
    engine.dispose()

    assert hit.id == asked.content_id and hit.has_accepted_answer


def every_page(
    engine: EmbeddedEngine, text: str, groups: Sequence[UUID] = (), limit: int = 7
) -> list[str]:
    """The ids of every page of a search, followed cursor by cursor."""
    ids: list[str] = []
    cursor = None
    for _page in range(1000):
        page = engine.search(TextQuery.parse(text), SearchFilters(), groups, cursor, limit)
        ids.extend(str(hit.id) for hit in page.hits)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor
    raise AssertionError("the cursors never ended")


def bm25_order(connection: Connection, word: str) -> list[str]:
    """FTS5's own ranking of the public items matching `word` (our weights)."""
    rows = connection.execute(
        text(
            f"SELECT d.id FROM search_fts JOIN search_document AS d ON d.seq = search_fts.rowid"
            f" WHERE search_fts MATCH :word AND d.visibility = 'public'"
            f" ORDER BY {BM25}, d.seq"
        ),
        {"word": word},
    )
    return [row.id for row in rows]


def test_a_word_in_half_a_large_index_matches_but_ranks_after_the_other_words(
    connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The mechanism at a twentieth of the size at which it starts in production.
    monkeypatch.setattr(embedded, "WEIGHTLESS_MATCHES", 1000)
    engine = EmbeddedEngine(connection)
    group = new_id()
    size = 2 * embedded.WEIGHTLESS_MATCHES + 40
    docs = [doc(f"common filler {n}") for n in range(size)]
    # A few carry a telling word, some twice, one in its title: bm25 orders them.
    for n in range(0, size, size // 30):
        docs[n] = doc("common rare" + " rare" * (n % 3), title="rare" if n == 0 else None)
    # Private items match too, for their members only.
    for n in range(5, 60, 6):
        docs[n] = doc("common rare secret", group_id=group)
    engine.index(docs)
    public_rare = bm25_order(connection, "rare")
    public_rest = [str(d.id) for d in reversed(docs) if d.group_id is None]
    public_rest = [i for i in public_rest if i not in set(public_rare)]

    # Every page walked: the telling word's matches by bm25, then the rest newest first,
    # none twice, none missing, nothing private.
    assert every_page(engine, "common rare") == public_rare + public_rest
    # A page that ends with the last ranked item: the next starts at the newest.
    assert every_page(engine, "common rare", limit=len(public_rare)) == public_rare + public_rest
    # One word only, weightless: newest first.
    assert every_page(engine, "common", limit=500) == [
        str(d.id) for d in reversed(docs) if d.group_id is None
    ]
    # A member sees the private items, ranked with the rest.
    seen = every_page(engine, "common rare", [group], limit=50)
    assert len(seen) == len(set(seen)) == size
    assert {str(d.id) for d in docs if d.group_id} <= set(seen[:40])


def test_a_small_index_ranks_every_word_by_bm25(connection: Connection) -> None:
    engine = EmbeddedEngine(connection)
    docs = [
        doc("common filler" + " common" * (n % 4), title="common" if n == 7 else None)
        for n in range(40)
    ]
    engine.index(docs)
    assert every_page(engine, "common") == bm25_order(connection, '"common"')


@pytest.mark.parametrize("values", [["newest", "x"], ["newest", 1.5], ["later", 3], [1.0, "x"]])
def test_a_forged_search_cursor_is_a_bad_request(connection: Connection, values: list[Any]) -> None:
    engine = EmbeddedEngine(connection)
    with pytest.raises(BadRequest):
        engine.search(TextQuery.parse("word"), SearchFilters(), (), encode_cursor(values), 5)
