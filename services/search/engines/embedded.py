"""The embedded engine: SQLite FTS5 inside the search service's own database.

Why FTS5 rather than tantivy (see BASELINES.md): tantivy answers queries faster
(0.04 vs 2.3 ms p50 on a common word), but every event changes one document, and a
tantivy commit per document runs at ~125 docs/s against FTS5's 12k, so tantivy would
need batching, and its index lives outside the database, so "indexed" and "event
processed" would be two commits needing their own bookkeeping to stay idempotent.
FTS5 writes the index in the consumer's transaction, together with the
processed-event record: an event is applied exactly once, by construction. At
Knowflow's scale (thousands, not millions, of items per organisation) FTS5's
scoring of every match is fast enough; OpenSearch is the engine for more.

Storage: `search_document` holds metadata, version and tombstones (an explicit
INTEGER PRIMARY KEY, so VACUUM keeps rowids); `search_fts` holds the text under the
same rowid; `search_document_tag` makes tag filters an index lookup. Ranking is
bm25 with the title weighted 10, tags 4, body 1, over any of the query's words
(porter-stemmed; stop words are dropped by `TextQuery`): more matching words and rarer
ones score higher. In a large index a word found in at least half of the items has no
weight (bm25 gives it none) and is not scored: it matches, after the ranked items, most
recently indexed first (`EmbeddedEngine.search`). Questions also keep their accepted
answer and `duplicate_of`.
"""

import json
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from threading import Lock
from typing import Any
from uuid import UUID
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, Row, text
from sqlalchemy.exc import OperationalError

from services.search.engines.base import (
    TOPIC_ITEM_CAP,
    Deletion,
    Expert,
    ExpertQuery,
    IndexDoc,
    Prior,
    SearchFilters,
    SearchHit,
    SearchPage,
    SignalsLookup,
    SimilarQuery,
    TagCount,
    TextQuery,
)
from services.search.engines.expertise import (
    Candidate,
    active_since,
    as_experts,
    rank_experts,
    reference_time,
)
from services.search.engines.highlight import CLOSE, OPEN, clean, plain_snippet, render
from shared.errors import BadRequest
from shared.ids import utcnow
from shared.pagination import decode_cursor, encode_cursor

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS search_document (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        version INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        kind TEXT, title TEXT, author_id TEXT, group_id TEXT, visibility TEXT,
        parent_id TEXT, thread_id TEXT, tags TEXT NOT NULL DEFAULT '[]',
        created_at TEXT, updated_at TEXT, accepted_answer_id TEXT, duplicate_of TEXT)""",
    "CREATE INDEX IF NOT EXISTS search_document_thread ON search_document (thread_id)",
    "CREATE INDEX IF NOT EXISTS search_document_author ON search_document (author_id)",
    "CREATE INDEX IF NOT EXISTS search_document_group ON search_document (group_id)",
    """CREATE TABLE IF NOT EXISTS search_document_tag (
        tag TEXT NOT NULL, doc_seq INTEGER NOT NULL, PRIMARY KEY (tag, doc_seq)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS search_document_tag_doc ON search_document_tag (doc_seq)",
    """CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(
        title, body, tags, tokenize = 'porter unicode61 remove_diacritics 2')""",
)

# Weights title 10, body 1, tags 4: a word in the title says more about the item.
BM25 = "bm25(search_fts, 10.0, 1.0, 4.0)"
SNIPPET = f"snippet(search_fts, 1, '{OPEN}', '{CLOSE}', '…', 24)"
# Experts consider at most this many best-matching items, and as many tagged ones, newest
# first (then every reply in their threads).
CANDIDATE_CAP = 500


# Columns added after the first release: an index created before them gains them at start
# (the engine's storage is its own, created here rather than by Alembic; see engines/).
ADDED_COLUMNS = {"accepted_answer_id": "TEXT", "duplicate_of": "TEXT"}


def create_schema(connection: Connection) -> None:
    """Create the engine's tables if they are missing, and add columns they lack."""
    for statement in SCHEMA:
        connection.execute(text(statement))
    present = {row.name for row in connection.execute(text("PRAGMA table_info(search_document)"))}
    for name, kind in ADDED_COLUMNS.items():
        if name not in present:
            connection.execute(text(f"ALTER TABLE search_document ADD COLUMN {name} {kind}"))


def _stamp(value: datetime) -> str:
    """UTC with fixed width, so text order is time order."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _unstamp(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


def _any_term_expression(terms: Sequence[str]) -> str:
    """Each word as an FTS5 string (terms hold no quotes), any of them matching."""
    return " OR ".join(f'"{term}"' for term in terms)


# Similar questions: a draft's title words weigh in full, its body words at this share
# (the body elaborates; the title states the question), and each tag it shares with a
# question multiplies that question's score by 1 + SIMILAR_TAG_BOOST (a boost, never a
# match by itself). The same weights as the OpenSearch engine's.
SIMILAR_BODY_WEIGHT = 0.3
SIMILAR_TAG_BOOST = 0.2


def _visible(alias: str) -> str:
    """The permission filter, applied inside every query."""
    return (
        f"({alias}.visibility = 'public' OR "
        f"{alias}.group_id IN (SELECT value FROM json_each(:principal_groups)))"
    )


def _filter_conditions(filters: SearchFilters, params: dict[str, Any]) -> list[str]:
    """Live, visible (`:principal_groups`) and matching the filters; fills `params`."""
    conditions = ["d.deleted = 0", _visible("d")]
    if filters.kind:
        conditions.append("d.kind = :kind")
        params["kind"] = filters.kind
    if filters.tag:
        conditions.append(
            "EXISTS (SELECT 1 FROM search_document_tag AS t"
            " WHERE t.tag = :tag AND t.doc_seq = d.seq)"
        )
        params["tag"] = filters.tag
    if filters.author_id:
        conditions.append("d.author_id = :author_id")
        params["author_id"] = str(filters.author_id)
    if filters.group_id:
        conditions.append("d.group_id = :group_id")
        params["group_id"] = str(filters.group_id)
    if filters.since:
        conditions.append("d.created_at >= :since")
        params["since"] = _stamp(filters.since)
    if filters.until:
        conditions.append("d.created_at < :until")
        params["until"] = _stamp(filters.until)
    return conditions


@contextmanager
def _fts_errors() -> Iterator[None]:
    """An FTS5 syntax error is the caller's input, never a 500."""
    try:
        yield
    except OperationalError as exc:
        if "fts5" in str(exc.orig).lower():
            raise BadRequest("the query cannot be searched") from exc
        raise


# A word in at least half of the items is weightless (see `EmbeddedEngine.search`) once it
# has this many matches, whose scoring would cost ~11 ms. Below that it is scored as any
# word: an organisation's index of a few thousand items keeps bm25's order (its title
# weight puts "Quantum chemistry" before a comment that mentions quantum in passing).
WEIGHTLESS_MATCHES = 20_000


class _WordCounts:
    """Whether each recently searched word was weightless, and the index size it was
    counted at, per database; the oldest forgotten beyond `limit` words."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lock = Lock()  # searches run in worker threads
        self.by_database: WeakKeyDictionary[Engine, dict[str, tuple[bool, int]]] = (
            WeakKeyDictionary()
        )

    def get(self, database: Engine, term: str) -> tuple[bool, int] | None:
        with self.lock:
            return self.by_database.get(database, {}).get(term)

    def put(self, database: Engine, term: str, counted: tuple[bool, int]) -> None:
        with self.lock:
            terms = self.by_database.setdefault(database, {})
            terms[term] = counted
            while len(terms) > self.limit:
                del terms[next(iter(terms))]


_counted = _WordCounts(limit=10_000)
NEWEST = "newest"  # a cursor's mark: the page goes on among the weightless matches
# What a `SearchHit` is made of (`_hit`), from `search_document AS d`.
_HIT_COLUMNS = """d.seq, d.id, d.kind, d.title, d.author_id, d.group_id, d.visibility,
    d.tags, d.created_at, d.accepted_answer_id, d.duplicate_of"""


@dataclass(frozen=True)
class _Position:
    """Where a search page starts: after a ranked hit, or among the newest weightless
    matches (below a rowid, or from the newest)."""

    ranked_after: tuple[float, int] | None = None
    newest: bool = False
    newest_before: int | None = None

    @classmethod
    def of(cls, cursor: str | None) -> "_Position":
        values = decode_cursor(cursor, 2)
        if values is None:
            return cls()
        first, second = values
        if first == NEWEST and (second is None or type(second) is int):
            return cls(newest=True, newest_before=second)
        if isinstance(first, int | float) and type(second) is int:
            return cls(ranked_after=(float(first), second))
        raise BadRequest("malformed cursor")


class EmbeddedEngine:
    """The FTS5 index, working inside the caller's connection and transaction."""

    def __init__(self, connection: Connection, *, now: Callable[[], datetime] = utcnow) -> None:
        self.connection = connection
        self.now = now

    def _run(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        return self.connection.execute(text(sql), params or {})

    def index(self, docs: Sequence[IndexDoc]) -> None:
        self.apply(docs)

    def delete(self, deletions: Sequence[Deletion]) -> None:
        self.apply(deletions)

    def apply(self, ops: Sequence[IndexDoc | Deletion]) -> None:
        """Upserts and deletions in order, each skipped if the index holds as new a version.

        A few statements for the whole batch (one read of what is stored, then one
        executemany per table), not a few per document: SQLAlchemy's per-statement cost
        (~0.4 ms) was most of the time an event took, the SQLite work itself ~0.1 ms.
        """
        if not ops:
            return
        ids = list(dict.fromkeys(str(op.id) for op in ops))
        stored = {
            row.id: row
            for row in self._run(
                "SELECT id, seq, version, deleted FROM search_document"
                " WHERE id IN (SELECT value FROM json_each(:ids))",
                {"ids": json.dumps(ids)},
            )
        }
        state = {key: (row.version, bool(row.deleted)) for key, row in stored.items()}
        final: dict[str, IndexDoc | Deletion] = {}
        for op in ops:
            key = str(op.id)
            held = state.get(key)
            if held is not None and (
                op.version < held[0]
                # A replayed upsert never revives what the same version deleted.
                or (isinstance(op, IndexDoc) and op.version == held[0] and held[1])
            ):
                continue  # stale or replayed: what we hold is as new or newer
            state[key] = (op.version, isinstance(op, Deletion))
            final[key] = op
        if not final:
            return
        docs = {key: op for key, op in final.items() if isinstance(op, IndexDoc)}
        gone = {key: op for key, op in final.items() if isinstance(op, Deletion)}
        # Whatever text a changed row had goes; its new text (if any) follows.
        changed = [(stored[key].seq,) for key in final if key in stored]
        self._many("DELETE FROM search_fts WHERE rowid = ?", changed)
        self._many("DELETE FROM search_document_tag WHERE doc_seq = ?", changed)
        self._many(
            "UPDATE search_document SET version = ?, deleted = 1 WHERE seq = ?",
            [(op.version, stored[key].seq) for key, op in gone.items() if key in stored],
        )
        # Deleted before we saw it: the tombstone stops a late create.
        self._many(
            "INSERT INTO search_document (id, version, deleted) VALUES (?, ?, 1)",
            [(key, op.version) for key, op in gone.items() if key not in stored],
        )
        self._many(
            f"""UPDATE search_document SET {", ".join(f"{name} = ?" for name in _DOC_COLUMNS)},
                deleted = 0 WHERE seq = ?""",
            [(*_doc_values(op), stored[key].seq) for key, op in docs.items() if key in stored],
        )
        new = [key for key in docs if key not in stored]
        self._many(
            f"""INSERT INTO search_document ({", ".join(_DOC_COLUMNS)}, deleted)
                VALUES ({", ".join("?" for _ in _DOC_COLUMNS)}, 0)""",
            [_doc_values(docs[key]) for key in new],
        )
        seqs = {key: row.seq for key, row in stored.items()}
        if new:
            seqs.update(
                (row.id, row.seq)
                for row in self._run(
                    "SELECT id, seq FROM search_document"
                    " WHERE id IN (SELECT value FROM json_each(:ids))",
                    {"ids": json.dumps(new)},
                )
            )
        self._many(
            "INSERT INTO search_fts (rowid, title, body, tags) VALUES (?, ?, ?, ?)",
            [
                (seqs[key], clean(doc.title or ""), clean(doc.body), " ".join(_tags(doc)))
                for key, doc in docs.items()
            ],
        )
        self._many(
            "INSERT INTO search_document_tag (tag, doc_seq) VALUES (?, ?)",
            [(tag, seqs[key]) for key, doc in docs.items() for tag in _tags(doc)],
        )

    def _many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """One statement for many rows, straight to the driver (executemany)."""
        if rows:
            self.connection.exec_driver_sql(sql, list(rows))

    def search(
        self,
        query: TextQuery,
        filters: SearchFilters,
        principal_groups: Collection[UUID],
        cursor: str | None,
        limit: int,
        *,
        snippets: bool = True,
    ) -> SearchPage:
        """A page of matches: ranked by bm25, then those matching only weightless words.

        A word in at least half of the items has no weight in bm25 (FTS5 sets its idf to
        1e-6, so it only breaks ties), yet scoring its matches was most of what a query
        cost: ~0.5 µs a match against ~0.03 to find one, 40 ms for a word in 70% of
        100,000 items. Once such a word has WEIGHTLESS_MATCHES matches it still matches
        but is not scored: items matching the query's other words come first, ranked by
        bm25 over those words; then the items matching only weightless words, most
        recently indexed first (rowid order, which FTS5 reads from the newest and stops
        at the page). Smaller indexes rank every word as before.
        """
        params: dict[str, Any] = {
            "principal_groups": json.dumps([str(group) for group in principal_groups]),
        }
        conditions = _filter_conditions(filters, params)
        position = _Position.of(cursor)
        weightless = self._weightless(query.terms)
        ranked_terms = [term for term in query.terms if term not in weightless]
        rows: list[Row[Any]] = []
        if not position.newest and ranked_terms:
            rows = self._ranked(
                ranked_terms, conditions, params, position.ranked_after, limit + 1, snippets
            )
            if len(rows) > limit:
                rows = rows[:limit]
                return SearchPage(
                    hits=[_hit(row) for row in rows],
                    next_cursor=encode_cursor([rows[-1].rank, rows[-1].seq]),
                )
        room = limit - len(rows)
        newest: list[Row[Any]] = []
        if weightless:
            newest = self._newest(
                weightless,
                ranked_terms,
                conditions,
                params,
                position.newest_before,
                room + 1,
                snippets,
            )
        next_cursor = None
        if len(newest) > room:
            newest = newest[:room]
            next_cursor = encode_cursor([NEWEST, newest[-1].seq if newest else None])
        return SearchPage(
            hits=[_hit(row) for row in rows] + [_hit(row, score=0.0) for row in newest],
            next_cursor=next_cursor,
        )

    def _weightless(self, terms: Sequence[str]) -> list[str]:
        """The terms in at least half of the indexed items, when that is WEIGHTLESS_MATCHES
        items or more: FTS5's idf is then <= 0, and it scores them 1e-6."""
        rows = self._run("SELECT count(*) FROM search_fts_docsize").scalar_one()
        # idf = log((N - n + 0.5) / (n + 0.5)) <= 0 exactly when 2n >= N.
        needed = max((rows + 1) // 2, WEIGHTLESS_MATCHES)
        if rows < needed:
            return []
        found = []
        for term in terms:
            known = _counted.get(self.connection.engine, term)
            # Counting a common word costs ~0.03 µs a match, so a count holds until the
            # index changes size by 1%: a query's cost stays flat as the index grows.
            if known is None or abs(rows - known[1]) * 100 > known[1]:
                with _fts_errors():
                    matches = self._run(
                        "SELECT count(*) FROM (SELECT 1 FROM search_fts"
                        " WHERE search_fts MATCH :match LIMIT :needed)",
                        {"match": _any_term_expression([term]), "needed": needed},
                    ).scalar_one()
                known = (matches >= needed, rows)
                _counted.put(self.connection.engine, term, known)
            if known[0]:
                found.append(term)
        return found

    def _ranked(
        self,
        terms: Sequence[str],
        conditions: list[str],
        params: dict[str, Any],
        after: tuple[float, int] | None,
        count: int,
        snippets: bool,
    ) -> list[Row[Any]]:
        """Matches of any of `terms` after `after`, best first by bm25 over them."""
        params = {**params, "match": _any_term_expression(terms), "count": count}
        following = ""
        if after is not None:
            following = "WHERE (rank, seq) > (:after_rank, :after_seq)"
            params.update(after_rank=after[0], after_seq=after[1])
        sql = f"""SELECT * FROM (
                SELECT {_HIT_COLUMNS}, {SNIPPET if snippets else "''"} AS snippet, {BM25} AS rank
                FROM search_fts JOIN search_document AS d ON d.seq = search_fts.rowid
                WHERE {" AND ".join(["search_fts MATCH :match", *conditions])}
            ) {following} ORDER BY rank, seq LIMIT :count"""
        with _fts_errors():
            return list(self._run(sql, params).all())

    def _newest(
        self,
        weightless: Sequence[str],
        ranked_terms: Sequence[str],
        conditions: list[str],
        params: dict[str, Any],
        before: int | None,
        count: int,
        snippets: bool,
    ) -> list[Row[Any]]:
        """Matches of only weightless words, newest (highest rowid) first, before `before`."""
        match = _any_term_expression(weightless)
        if ranked_terms:  # those are listed by rank already
            match = f"({match}) NOT ({_any_term_expression(ranked_terms)})"
        params = {**params, "match": match, "count": count}
        where = ["search_fts MATCH :match", *conditions]
        if before is not None:
            where.append("search_fts.rowid < :before")
            params["before"] = before
        sql = f"""SELECT {_HIT_COLUMNS}, {SNIPPET if snippets else "''"} AS snippet, 0.0 AS rank
            FROM search_fts JOIN search_document AS d ON d.seq = search_fts.rowid
            WHERE {" AND ".join(where)}
            ORDER BY search_fts.rowid DESC LIMIT :count"""
        with _fts_errors():
            return list(self._run(sql, params).all())

    def hits_for(
        self,
        ids: Collection[UUID],
        terms: Sequence[str],
        filters: SearchFilters,
        principal_groups: Collection[UUID],
        *,
        snippets: bool = True,
    ) -> list[SearchHit]:
        if not ids:
            return []
        params: dict[str, Any] = {
            "ids": json.dumps([str(content_id) for content_id in ids]),
            "principal_groups": json.dumps([str(group) for group in principal_groups]),
        }
        conditions = [
            "d.id IN (SELECT value FROM json_each(:ids))",
            *_filter_conditions(filters, params),
        ]
        rows = self._run(
            f"""SELECT {_HIT_COLUMNS}, '' AS snippet
            FROM search_document AS d WHERE {" AND ".join(conditions)}""",
            params,
        ).all()
        if not snippets:
            return [_hit(row, score=0.0) for row in rows]
        marked = self._snippets_for(_any_term_expression(terms), [row.seq for row in rows])
        return [replace(_hit(row, score=0.0), snippet=marked.get(row.seq, "")) for row in rows]

    def similar_questions(
        self, draft: SimilarQuery, principal_groups: Collection[UUID], limit: int
    ) -> list[SearchHit]:
        params: dict[str, Any] = {
            "principal_groups": json.dumps([str(group) for group in principal_groups]),
            "tags": json.dumps(list(draft.tags)),
            "limit": limit,
        }
        # One FTS5 query per part of the draft (FTS5 weighs columns, not query words),
        # summed per question; bm25 is lower-is-better, so its negation is the score.
        parts = []
        for name, terms, weight in (
            ("title", draft.title_terms, 1.0),
            ("body", draft.body_terms, SIMILAR_BODY_WEIGHT),
        ):
            if terms:
                params[f"{name}_match"] = _any_term_expression(terms)
                parts.append(
                    f"SELECT rowid AS seq, -{BM25} * {weight} AS score"
                    f" FROM search_fts WHERE search_fts MATCH :{name}_match"
                )
        scope = ""
        if draft.group_id is not None:
            scope = "AND (d.visibility = 'public' OR d.group_id = :group_id)"
            params["group_id"] = str(draft.group_id)
        # MATERIALIZED: bm25() only works where its FTS5 query is evaluated, never in a
        # subquery SQLite would flatten into the join below.
        ctes = [f"part{i} AS MATERIALIZED ({part})" for i, part in enumerate(parts)]
        union = " UNION ALL ".join(f"SELECT seq, score FROM part{i}" for i in range(len(parts)))
        sql = f"""WITH {", ".join(ctes)},
            text_scores AS (SELECT seq, SUM(score) AS score FROM ({union}) GROUP BY seq)
            SELECT {_HIT_COLUMNS}, '' AS snippet,
                s.score * (1 + {SIMILAR_TAG_BOOST} * (
                    SELECT COUNT(*) FROM search_document_tag AS t
                    WHERE t.doc_seq = d.seq AND t.tag IN (SELECT value FROM json_each(:tags))
                )) AS score
            FROM text_scores AS s JOIN search_document AS d ON d.seq = s.seq
            WHERE d.kind = 'question' AND d.deleted = 0 AND {_visible("d")} {scope}
            ORDER BY score DESC, d.seq LIMIT :limit"""
        with _fts_errors():
            rows = self._run(sql, params).all()
        snippets = self._snippets_for(
            _any_term_expression((*draft.title_terms, *draft.body_terms)),
            [row.seq for row in rows],
        )
        return [
            replace(_hit(row, score=float(row.score)), snippet=snippets.get(row.seq, ""))
            for row in rows
        ]

    def experts(
        self,
        query: ExpertQuery,
        principal_groups: Collection[UUID],
        limit: int,
        *,
        signals: SignalsLookup,
        priors: Sequence[Prior] = (),
        person: UUID | None = None,
    ) -> list[Expert]:
        params: dict[str, Any] = {
            "match": _any_term_expression(query.terms),
            "tags": json.dumps(list(query.tags)),
            "principal_groups": json.dumps([str(group) for group in principal_groups]),
            "cap": CANDIDATE_CAP,
        }
        text_hits = (
            f"""SELECT search_fts.rowid AS seq, -{BM25} AS relevance
                FROM search_fts JOIN search_document AS d ON d.seq = search_fts.rowid
                WHERE search_fts MATCH :match AND d.deleted = 0 AND {_visible("d")}
                ORDER BY {BM25} LIMIT :cap"""
            if query.terms
            else "SELECT NULL AS seq, 0.0 AS relevance WHERE 0"
        )
        # Any word matching (ranked by BM25), or any of the tags, then every answer,
        # comment or reply in the threads of those items.
        sql = f"""WITH text_hits AS ({text_hits}),
            tag_hits AS (
                SELECT d.seq, 0.0 AS relevance FROM search_document AS d
                WHERE d.deleted = 0 AND {_visible("d")} AND d.seq IN (
                    SELECT doc_seq FROM search_document_tag
                    WHERE tag IN (SELECT value FROM json_each(:tags)))
                ORDER BY d.created_at DESC LIMIT :cap
            ), on_topic AS (
                SELECT h.seq, d.id, MAX(h.relevance) AS relevance
                FROM (SELECT * FROM text_hits UNION ALL SELECT * FROM tag_hits) AS h
                JOIN search_document AS d ON d.seq = h.seq
                GROUP BY h.seq
            ), in_threads AS (
                SELECT r.seq, 0.0 AS relevance
                FROM on_topic AS o JOIN search_document AS r ON r.thread_id = o.id
                WHERE r.seq != o.seq AND r.kind IN ('reply', 'answer', 'comment')
                    AND r.deleted = 0 AND {_visible("r")}
            ), candidates AS (
                SELECT seq, MAX(relevance) AS relevance FROM (
                    SELECT seq, relevance FROM on_topic
                    UNION ALL SELECT seq, relevance FROM in_threads)
                GROUP BY seq
            )
            SELECT d.seq, d.id, d.author_id, d.kind, d.title, d.created_at, d.tags,
                d.thread_id, c.relevance
            FROM candidates AS c JOIN search_document AS d ON d.seq = c.seq
            ORDER BY c.relevance DESC, d.created_at DESC, d.seq DESC LIMIT :limit"""
        params["limit"] = 3 * CANDIDATE_CAP
        with _fts_errors():
            rows = self._run(sql, params).all()
        seqs: dict[UUID, int] = {}
        candidates = []
        for row in rows:
            content_id = UUID(row.id)
            seqs[content_id] = row.seq
            candidates.append(
                Candidate(
                    content_id=content_id,
                    author_id=UUID(row.author_id),
                    kind=row.kind,
                    title=row.title,
                    created_at=_unstamp(row.created_at),
                    relevance=max(float(row.relevance), 0.0),
                    tags=tuple(json.loads(row.tags)),
                    thread_id=UUID(row.thread_id) if row.thread_id else None,
                )
            )
        now = self.now()
        ranked = rank_experts(
            candidates,
            signals=signals([candidate.content_id for candidate in candidates]),
            now=now,
            limit=limit,
            query_tags=query.tags,
            priors=priors,
            only=person,
            recent_answers=self._recent_answers(
                {c.author_id for c in candidates if person in (None, c.author_id)},
                reference_time(candidates, now),
                params,
            ),
        )
        wanted = [item.candidate.content_id for someone in ranked for item in someone.evidence]
        by_seq = self._snippets(query, [seqs[content_id] for content_id in wanted])
        snippets = {
            content_id: by_seq[seqs[content_id]]
            for content_id in wanted
            if seqs[content_id] in by_seq
        }
        return as_experts(ranked, snippets)

    def tag_counts(
        self, prefix: str, principal_groups: Collection[UUID], limit: int
    ) -> list[TagCount]:
        params: dict[str, Any] = {
            "principal_groups": json.dumps([str(group) for group in principal_groups]),
            "limit": limit,
        }
        starts = ""
        if prefix:
            # A range on the tag (the primary key's first column): every tag with the prefix
            # sorts between it and it followed by the greatest code point.
            starts = "AND t.tag >= :low AND t.tag < :high"
            params.update(low=prefix, high=prefix + "\U0010ffff")
        rows = self._run(
            f"""SELECT t.tag, COUNT(*) AS uses
                FROM search_document_tag AS t JOIN search_document AS d ON d.seq = t.doc_seq
                WHERE d.deleted = 0 AND {_visible("d")} {starts}
                GROUP BY t.tag ORDER BY uses DESC, t.tag LIMIT :limit""",
            params,
        ).all()
        return [TagCount(tag=row.tag, count=int(row.uses)) for row in rows]

    def authored_topics(
        self, author_id: UUID, principal_groups: Collection[UUID], limit: int
    ) -> list[TagCount]:
        rows = self._run(
            f"""WITH mine AS (
                    SELECT d.seq, d.thread_id FROM search_document AS d
                    WHERE d.author_id = :author AND d.deleted = 0 AND {_visible("d")}
                    ORDER BY d.created_at DESC, d.seq DESC LIMIT :cap
                ), topics AS (
                    SELECT m.seq AS item, t.tag
                    FROM mine AS m JOIN search_document_tag AS t ON t.doc_seq = m.seq
                    UNION
                    SELECT m.seq AS item, t.tag
                    FROM mine AS m JOIN search_document AS r ON r.id = m.thread_id
                    JOIN search_document_tag AS t ON t.doc_seq = r.seq
                    WHERE r.deleted = 0 AND {_visible("r")}
                )
                SELECT tag, COUNT(*) AS uses FROM topics
                GROUP BY tag ORDER BY uses DESC, tag LIMIT :limit""",
            {
                "author": str(author_id),
                "principal_groups": json.dumps([str(group) for group in principal_groups]),
                "cap": TOPIC_ITEM_CAP,
                "limit": limit,
            },
        ).all()
        return [TagCount(tag=row.tag, count=int(row.uses)) for row in rows]

    def _recent_answers(
        self, people: Collection[UUID], reference: datetime, params: dict[str, Any]
    ) -> dict[UUID, int]:
        """Visible answers and replies per person in the availability window, on any topic."""
        if not people:
            return {}
        rows = self._run(
            f"""SELECT d.author_id, COUNT(*) AS answers FROM search_document AS d
                WHERE d.author_id IN (SELECT value FROM json_each(:people))
                    AND d.kind IN ('answer', 'reply') AND d.deleted = 0 AND {_visible("d")}
                    AND d.created_at >= :since AND d.created_at <= :until
                GROUP BY d.author_id""",
            {
                "people": json.dumps(sorted(str(person) for person in people)),
                "principal_groups": params["principal_groups"],
                "since": _stamp(active_since(reference)),
                "until": _stamp(reference),
            },
        ).all()
        return {UUID(row.author_id): int(row.answers) for row in rows}

    def _snippets(self, query: ExpertQuery, seqs: list[int]) -> dict[int, str]:
        """Highlighted snippets where the text matches, the body's opening otherwise."""
        return self._snippets_for(_any_term_expression(query.terms), seqs)

    def _snippets_for(self, match: str, seqs: list[int]) -> dict[int, str]:
        """Highlighted snippets where `match` matches the text, the body's opening otherwise."""
        if not seqs:
            return {}
        params = {"seqs": json.dumps(seqs), "match": match}
        in_seqs = "rowid IN (SELECT value FROM json_each(:seqs))"
        snippets = {
            row.rowid: plain_snippet(row.body)
            for row in self._run(f"SELECT rowid, body FROM search_fts WHERE {in_seqs}", params)
        }
        if not match:
            return snippets
        with _fts_errors():
            matched = self._run(
                f"SELECT rowid, {SNIPPET} AS snippet FROM search_fts"
                f" WHERE search_fts MATCH :match AND {in_seqs}",
                params,
            )
            snippets.update({row.rowid: render(row.snippet) for row in matched})
        return snippets


def _text_or_none(value: UUID | None) -> str | None:
    return str(value) if value else None


# What an upsert stores about a document, in this order (see `_doc_values`).
_DOC_COLUMNS = (
    "id",
    "version",
    "kind",
    "title",
    "author_id",
    "group_id",
    "visibility",
    "parent_id",
    "thread_id",
    "tags",
    "created_at",
    "updated_at",
    "accepted_answer_id",
    "duplicate_of",
)


def _tags(doc: IndexDoc) -> list[str]:
    return sorted(set(doc.tags))


def _doc_values(doc: IndexDoc) -> tuple[Any, ...]:
    return (
        str(doc.id),
        doc.version,
        doc.kind,
        doc.title,
        str(doc.author_id),
        _text_or_none(doc.group_id),
        doc.visibility,
        _text_or_none(doc.parent_id),
        _text_or_none(doc.thread_id),
        json.dumps(_tags(doc)),
        _stamp(doc.created_at),
        _stamp(doc.updated_at),
        _text_or_none(doc.accepted_answer_id),
        _text_or_none(doc.duplicate_of),
    )


def _hit(row: Row[Any], score: float | None = None) -> SearchHit:
    return SearchHit(
        id=UUID(row.id),
        kind=row.kind,
        title=row.title,
        snippet=render(row.snippet or ""),
        author_id=UUID(row.author_id),
        group_id=UUID(row.group_id) if row.group_id else None,
        visibility=row.visibility,
        tags=tuple(json.loads(row.tags)),
        created_at=_unstamp(row.created_at),
        # bm25 is lower-is-better; expose higher-is-better.
        score=-float(row.rank) if score is None else score,
        has_accepted_answer=bool(row.accepted_answer_id),
        duplicate_of=UUID(row.duplicate_of) if row.duplicate_of else None,
    )
