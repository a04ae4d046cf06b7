"""Exact nearest-neighbour search over every visible chunk vector, in memory, with numpy.

Why exact and in memory: at Knowflow's scale (up to ~100k items per organisation, a few
chunks each) one int8 matrix of 384-dimension rows is ~40 MB per 100k chunks, and a
matrix-vector product over it takes milliseconds, with no recall lost to an approximate
index. int8 (unit vectors scaled by 127) keeps the ranking of float32 within rounding
(checked in `bench/semantic_eval.py`) at a quarter of the memory.

The permission filter is part of the search, never applied to its results: a row is a
candidate only if its item is public or in one of the caller's groups. The database
(`SearchVector`) is the truth; `refresh` follows its `changed_at` so every replica sees
what any replica's consumer wrote.
"""

import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from services.search.semantic.models import SearchVector
from shared.db import in_list
from shared.ids import utcnow

Vectors = npt.NDArray[np.float32]
SCALE = 127.0
# Rows are scored this many at a time, so a query's scratch memory stays small.
BLOCK_ROWS = 16_384
# Commits can become visible out of `changed_at` order (a slow transaction): each refresh
# re-reads this far back, and applying a row twice is harmless (versions decide).
REFRESH_OVERLAP = timedelta(seconds=30)
PUBLIC = -1


def quantize(vectors: Vectors) -> bytes:
    return np.clip(np.rint(vectors * SCALE), -127, 127).astype(np.int8).tobytes()


@dataclass(frozen=True)
class Item:
    """What the index keeps per content item, besides its vectors."""

    version: int
    kind: str
    author_id: UUID | None
    group_id: UUID | None
    public: bool


class VectorIndex:
    """Chunk vectors of every live item, with their permission and kind, searchable at once."""

    def __init__(self, dimensions: int, model: str) -> None:
        self.dimensions = dimensions
        self.model = model
        self._lock = threading.Lock()
        self._items: dict[UUID, Item] = {}
        self._versions: dict[UUID, int] = {}  # deletions too, so a stale row cannot return
        self._rows_of: dict[UUID, list[int]] = {}
        self._matrix = np.zeros((1024, dimensions), dtype=np.int8)
        self._row_item: list[UUID | None] = [None] * 1024
        self._row_group = np.full(1024, PUBLIC, dtype=np.int32)  # PUBLIC or a group's code
        self._row_kind = np.zeros(1024, dtype=np.int8)
        self._row_author = np.zeros(1024, dtype=np.int32)
        self._row_alive = np.zeros(1024, dtype=bool)
        self._used = 0
        self._codes: dict[UUID, int] = {}  # groups and authors, each to a small integer
        self._kinds: dict[str, int] = {}
        self._watermark: datetime | None = None

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, content_id: object) -> bool:
        return content_id in self._items

    @property
    def nbytes(self) -> int:
        """Memory the rows in use take (vectors and their permission columns)."""
        arrays = (self._matrix, self._row_group, self._row_kind, self._row_author, self._row_alive)
        return sum(array[: self._used].nbytes for array in arrays)

    @property
    def rows(self) -> int:
        return int(self._row_alive[: self._used].sum())

    def _code(self, value: UUID) -> int:
        return self._codes.setdefault(value, len(self._codes))

    def _kind(self, kind: str) -> int:
        return self._kinds.setdefault(kind, len(self._kinds) + 1)

    def put(self, content_id: UUID, item: Item, blob: bytes) -> None:
        """Replace the item's vectors, unless the index already holds a newer version."""
        with self._lock:
            held = self._versions.get(content_id, -1)
            if held > item.version or (held == item.version and content_id in self._items):
                return  # newer, or this very version (a refresh reads rows again)
            self._drop(content_id)
            self._versions[content_id] = item.version
            vectors = np.frombuffer(blob, dtype=np.int8).reshape(-1, self.dimensions)
            if not len(vectors):
                return
            self._grow(self._used + len(vectors))
            rows = list(range(self._used, self._used + len(vectors)))
            self._matrix[rows[0] : rows[-1] + 1] = vectors
            for row in rows:
                self._row_item[row] = content_id
            group = self._code(item.group_id) if item.group_id and not item.public else PUBLIC
            self._row_group[rows[0] : rows[-1] + 1] = group
            self._row_kind[rows[0] : rows[-1] + 1] = self._kind(item.kind)
            author = self._code(item.author_id) if item.author_id else -2
            self._row_author[rows[0] : rows[-1] + 1] = author
            self._row_alive[rows[0] : rows[-1] + 1] = True
            self._used += len(vectors)
            self._items[content_id] = item
            self._rows_of[content_id] = rows

    def remove(self, content_id: UUID, version: int) -> None:
        with self._lock:
            if self._versions.get(content_id, -1) > version:
                return
            self._versions[content_id] = version
            self._drop(content_id)

    def _drop(self, content_id: UUID) -> None:
        for row in self._rows_of.pop(content_id, ()):
            self._row_alive[row] = False
            self._row_item[row] = None
        self._items.pop(content_id, None)
        if self._used > 4096 and self.rows < self._used // 2:
            self._compact()

    def _grow(self, needed: int) -> None:
        capacity = len(self._row_alive)
        if needed <= capacity:
            return
        size = max(needed, capacity * 2)
        self._matrix = np.resize(self._matrix, (size, self.dimensions))
        self._row_item.extend([None] * (size - capacity))
        self._row_group = np.resize(self._row_group, size)
        self._row_kind = np.resize(self._row_kind, size)
        self._row_author = np.resize(self._row_author, size)
        alive = np.zeros(size, dtype=bool)
        alive[:capacity] = self._row_alive
        self._row_alive = alive

    def _compact(self) -> None:
        """Close the gaps deleted and replaced items left (called with the lock held)."""
        keep = np.flatnonzero(self._row_alive[: self._used])
        count = len(keep)
        self._matrix[:count] = self._matrix[keep]
        self._row_group[:count] = self._row_group[keep]
        self._row_kind[:count] = self._row_kind[keep]
        self._row_author[:count] = self._row_author[keep]
        items = [self._row_item[row] for row in keep]
        self._row_item[: len(self._row_item)] = [None] * len(self._row_item)
        self._row_item[:count] = items
        self._row_alive[:] = False
        self._row_alive[:count] = True
        self._used = count
        self._rows_of = {}
        for row, content_id in enumerate(items):
            assert content_id is not None
            self._rows_of.setdefault(content_id, []).append(row)

    def _candidates(
        self,
        principal_groups: Collection[UUID],
        kinds: Collection[str] | None,
        authors: Collection[UUID] | None = None,
    ) -> npt.NDArray[np.bool_]:
        """Rows the caller may see, of the kinds asked for: the permission filter."""
        used = self._used
        groups = [self._codes[group] for group in principal_groups if group in self._codes]
        visible = self._row_group[:used] == PUBLIC
        if groups:
            visible |= np.isin(self._row_group[:used], np.array(groups, dtype=np.int32))
        mask = self._row_alive[:used] & visible
        if kinds is not None:
            codes = [self._kinds[kind] for kind in kinds if kind in self._kinds]
            mask &= np.isin(self._row_kind[:used], np.array(codes, dtype=np.int8))
        if authors is not None:
            codes = [self._codes[author] for author in authors if author in self._codes]
            mask &= np.isin(self._row_author[:used], np.array(codes, dtype=np.int32))
        return mask

    def _scores(self, query: Vectors, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
        """Cosine of the query with every row (rows outside `mask` get -inf)."""
        scores = np.full(len(mask), -np.inf, dtype=np.float32)
        for start in range(0, len(mask), BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, len(mask))
            block = mask[start:stop]
            if not block.any():
                continue
            product = self._matrix[start:stop].astype(np.float32) @ query
            # Rounded: BLAS sums in an order that depends on where a row sits, and a row's
            # score must not change when it moves, or pages of a ranking could disagree.
            scores[start:stop] = np.where(block, np.round(product / SCALE, 5), -np.inf)
        return scores

    def nearest(
        self,
        query: Vectors,
        principal_groups: Collection[UUID],
        limit: int,
        *,
        kinds: Collection[str] | None = None,
        floor: float = -1.0,
    ) -> list[tuple[UUID, float]]:
        """The visible items closest to `query` (a unit vector), best chunk per item, none
        below the cosine `floor`."""
        with self._lock:
            mask = self._candidates(principal_groups, kinds)
            scores = self._scores(query, mask)
            found = int(mask.sum())
            if not found:
                return []
            # Enough rows that `limit` distinct items survive items with several chunks.
            take = min(found, limit * 4)
            top = np.argpartition(-scores, take - 1)[:take]
            best: dict[UUID, float] = {}
            for row in top[np.argsort(-scores[top], kind="stable")]:
                content_id = self._row_item[int(row)]
                if scores[row] < floor:
                    break
                if content_id is not None and content_id not in best:
                    best[content_id] = float(scores[row])
            return sorted(best.items(), key=lambda pair: (-pair[1], str(pair[0])))[:limit]

    def authors(self, content_ids: Iterable[UUID]) -> list[UUID]:
        """The authors of those items the index holds (one entry per item)."""
        with self._lock:
            items = [self._items.get(content_id) for content_id in content_ids]
        return [item.author_id for item in items if item is not None and item.author_id]

    def affinity(
        self,
        query: Vectors,
        authors: Collection[UUID],
        principal_groups: Collection[UUID],
        *,
        kinds: Collection[str] | None = None,
        top: int = 3,
    ) -> dict[UUID, float]:
        """Per author, the mean of their `top` closest visible items to `query` (0 to 1)."""
        with self._lock:
            mask = self._candidates(principal_groups, kinds, authors)
            rows = np.flatnonzero(mask)
            if not len(rows):
                return {}
            scores = self._matrix[rows].astype(np.float32) @ query / SCALE
            by_item: dict[UUID, float] = {}
            for row, score in zip(rows.tolist(), scores.tolist(), strict=True):
                content_id = self._row_item[row]
                if content_id is not None and score > by_item.get(content_id, -2.0):
                    by_item[content_id] = score
            per_author: dict[UUID, list[float]] = {}
            for content_id, score in by_item.items():
                author = self._items[content_id].author_id
                if author is not None:
                    per_author.setdefault(author, []).append(score)
        return {
            author: max(0.0, float(np.mean(sorted(scores, reverse=True)[:top])))
            for author, scores in per_author.items()
        }

    def apply(self, rows: Iterable[SearchVector]) -> None:
        for row in rows:
            if row.deleted or row.model != self.model:
                self.remove(row.content_id, row.version)
                continue
            item = Item(row.version, row.kind, row.author_id, row.group_id, row.public)
            self.put(row.content_id, item, row.vectors)

    def refresh(self, engine: Engine) -> int:
        """Apply what was written since the last refresh (all of it the first time); how
        many rows were read whole.

        The overlap re-reads recent rows every time: only their versions are read, and
        only rows this index lacks are read whole, so a quiet second costs one small query.
        """
        started = utcnow()
        with Session(engine) as session:
            if self._watermark is None:
                ids = None
            else:
                recent = session.exec(
                    select(
                        SearchVector.content_id,
                        SearchVector.version,
                        SearchVector.deleted,
                        SearchVector.model,
                    ).where(col(SearchVector.changed_at) >= self._watermark - REFRESH_OVERLAP)
                ).all()
                ids = [row[0] for row in recent if self._lacks(*row)]
            count = 0
            query = select(SearchVector).execution_options(yield_per=2000)
            for start in range(0, 1 if ids is None else len(ids), 500):
                chosen = query
                if ids is not None:
                    chosen = query.where(in_list(SearchVector.content_id, ids[start : start + 500]))
                for batch in session.exec(chosen).partitions():
                    self.apply(batch)
                    count += len(batch)
        self._watermark = started
        return count

    def _lacks(self, content_id: UUID, version: int, deleted: bool, model: str) -> bool:
        """Whether a stored row says something this index does not hold yet."""
        held = self._versions.get(content_id, -1)
        if version != held:
            return version > held
        return not deleted and model == self.model and content_id not in self._items
