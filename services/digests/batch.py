"""Building many people's digests at once, by followed source: the scheduled round's reading.

`build_digest` reads one person's digest with queries over all the window's content; for
a round of thousands that is people times content. Here the content of the sources
anyone due follows (people, groups, tags, and the threads followed people replied in) is
read once per window, as plain columns, and ranked once (`window.Window`). Then a chunk of
people at a time: their follows, memberships, handles and already-sent items in one query
each, and each person's digest picked from the window's sources in memory. Memory is the
window's threads (a few hundred bytes each) and one chunk's digests.

The result is the same digest `build_digest` gives (tested against it): the same rules of
visibility (public outside private groups, or in a group the person is a member of now,
read at build time), the same matches, the same ranking and rendering.
"""

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import zip_longest
from typing import Any, TypeVar, cast
from uuid import UUID

from sqlalchemy import ColumnElement, or_, union
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from services.digests.digest import (
    RenderedKey,
    Shown,
    check_window,
    follows_from,
    render_digest,
)
from services.digests.models import (
    DigestContent,
    DigestContentTag,
    DigestFollow,
    DigestGroup,
    DigestMembership,
    DigestSentItem,
    DigestUser,
)
from services.digests.ranking import Section
from services.digests.schemas import DigestItem, DigestPeriod, DigestPublic
from services.digests.window import NO_MENTIONS, Item, Reader, Thread, Window
from shared.db import in_list


@dataclass(frozen=True)
class Request:
    """One person's digest to build: whose, and the `[since, until)` window."""

    user_id: UUID
    period: DigestPeriod
    until: datetime
    since: datetime | None  # None: the period's length before `until`


def load_readers(session: Session, users: Sequence[UUID], *, with_sent: bool) -> dict[UUID, Reader]:
    """Follows, memberships, handles and already-sent items of `users`: one query each."""
    readers = {user: Reader(user_id=user, mention_keys=frozenset({str(user)})) for user in users}
    follow_rows: dict[UUID, list[tuple[str, str]]] = defaultdict(list)
    for follower, target_type, target in session.exec(
        select(DigestFollow.follower_id, DigestFollow.target_type, DigestFollow.target).where(
            in_list(DigestFollow.follower_id, users), col(DigestFollow.active).is_(True)
        )
    ):
        follow_rows[follower].append((target_type, target))
    groups: dict[UUID, set[UUID]] = defaultdict(set)
    for user, group in session.exec(
        select(DigestMembership.user_id, DigestMembership.group_id).where(
            in_list(DigestMembership.user_id, users), col(DigestMembership.active).is_(True)
        )
    ):
        groups[user].add(group)
    handles = dict(
        session.exec(
            select(DigestUser.user_id, DigestUser.handle).where(in_list(DigestUser.user_id, users))
        ).all()
    )
    sent: dict[UUID, set[UUID]] = defaultdict(set)
    if with_sent:
        for user, content_id in session.exec(
            select(DigestSentItem.user_id, DigestSentItem.content_id).where(
                in_list(DigestSentItem.user_id, users)
            )
        ):
            sent[user].add(content_id)
    for user, reader in readers.items():
        reader.follows = follows_from(user, follow_rows.get(user, ()))
        reader.member_of = frozenset(groups.get(user, ()))
        if user in handles:
            reader.mention_keys = frozenset({str(user), handles[user].lower()})
        reader.sent_before = frozenset(sent.get(user, ()))
    return readers


def _live_replies(since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    return [
        col(DigestContent.thread_root_id) != col(DigestContent.content_id),
        col(DigestContent.deleted).is_(False),
        col(DigestContent.hidden).is_(False),
        col(DigestContent.created_at) >= since,
        col(DigestContent.created_at) < until,
    ]


Key = TypeVar("Key", UUID, str)

# Rows are streamed in batches of this many, not fetched all at once.
YIELD_PER = 1000
ANYONE = UUID(int=0)  # no one's id: `follows_from` for the follows of many
# Ids per `IN (...)` list: well under SQLite's limit of bound parameters.
IN_LIST = 500


def _public(visibility: str, group_id: UUID | None, private_groups: frozenset[UUID]) -> bool:
    """Readable by anyone: public, and not in a private group."""
    return visibility == "public" and group_id not in private_groups


def _item(row: Sequence[Any], private_groups: frozenset[UUID], same: dict[Any, Any]) -> Item:
    """A row as an `Item`; `same` holds one copy of each id, kind and tag seen in the window.

    Each row brings its own copies of the same authors, groups, kinds and tags (a UUID is
    100 bytes, a short string about 55): one shared copy of each kept a window of 30,000
    threads some 6 MB smaller.
    """
    content_id, kind, author_id, group_id, visibility, created_at, tags, mentions = row
    return Item(
        content_id=content_id,
        kind=same.setdefault(kind, kind),
        author_id=same.setdefault(author_id, author_id),
        group_id=same.setdefault(group_id, group_id),
        public=_public(visibility, group_id, private_groups),
        created_at=created_at,
        tags=tuple(same.setdefault(tag, tag) for tag in tags) if tags else (),
        mentions=frozenset(same.setdefault(key, key) for key in mentions)
        if mentions
        else NO_MENTIONS,
    )


ITEM_COLUMNS: tuple[Any, ...] = (
    DigestContent.content_id,
    DigestContent.kind,
    DigestContent.author_id,
    DigestContent.group_id,
    DigestContent.visibility,
    DigestContent.created_at,
    DigestContent.tags,
    DigestContent.mentions,
)


def followed_sources(
    session: Session, followers: Iterable[UUID]
) -> tuple[set[UUID], set[UUID], set[str]]:
    """The people, groups and tags any of `followers` follows now."""
    users: set[UUID] = set()
    groups: set[UUID] = set()
    tags: set[str] = set()
    for part in in_parts(set(followers)):
        rows = session.exec(
            select(DigestFollow.target_type, DigestFollow.target)
            .where(
                in_list(DigestFollow.follower_id, part),
                col(DigestFollow.active).is_(True),
            )
            .distinct()
        )
        # Anyone's follows of themselves included: a source more is read, no digest changes.
        found = follows_from(ANYONE, rows)
        users |= found.users
        groups |= found.groups
        tags |= found.tags
    return users, groups, tags


def private_groups_now(session: Session) -> frozenset[UUID]:
    return frozenset(
        session.exec(select(DigestGroup.group_id).where(DigestGroup.visibility == "private")).all()
    )


def in_parts(values: Iterable[Key]) -> Iterator[list[Key]]:
    """`values` sorted, IN_LIST at a time (none for no values)."""
    ordered = sorted(values)
    for start in range(0, len(ordered), IN_LIST):
        yield ordered[start : start + IN_LIST]


def in_slices(
    users: set[UUID], groups: set[UUID], tags: set[str]
) -> Iterator[tuple[list[UUID], list[UUID], list[str]]]:
    """The followed sources, IN_LIST of each kind at a time: a statement names at most
    three times IN_LIST values however many people are followed (SQLite allows 32,766
    bound parameters by default, PostgreSQL 65,535)."""
    return zip_longest(in_parts(users), in_parts(groups), in_parts(tags), fillvalue=[])


def load_window(
    session: Session,
    followed: tuple[set[UUID], set[UUID], set[str]],
    *,
    since: datetime,
    until: datetime,
    private_groups: frozenset[UUID],
) -> Window:
    """The followed sources' roots (new, or replied to in the window) and their replies."""
    active_threads = select(DigestContent.thread_root_id).where(*_live_replies(since, until))
    threads: dict[UUID, Thread] = {}
    same: dict[Any, Any] = {}
    for users, groups, tags in in_slices(*followed):
        # The threads anyone may get: roots of followed sources, and threads a followed
        # person replied in.
        followed_roots = union(
            select(DigestContent.content_id).where(
                col(DigestContent.thread_root_id) == col(DigestContent.content_id),
                or_(
                    in_list(DigestContent.author_id, users),
                    in_list(DigestContent.group_id, groups),
                    col(DigestContent.content_id).in_(
                        select(DigestContentTag.content_id).where(
                            in_list(DigestContentTag.tag, tags)
                        )
                    ),
                ),
            ),
            select(DigestContent.thread_root_id).where(
                *_live_replies(since, until), in_list(DigestContent.author_id, users)
            ),
        ).subquery()
        roots = session.execute(
            select_columns(*ITEM_COLUMNS)
            .where(
                col(DigestContent.thread_root_id) == col(DigestContent.content_id),
                col(DigestContent.deleted).is_(False),
                col(DigestContent.hidden).is_(False),
                col(DigestContent.created_at) < until,
                or_(
                    col(DigestContent.created_at) >= since,
                    col(DigestContent.content_id).in_(active_threads),
                ),
                col(DigestContent.content_id).in_(select(followed_roots.c[0])),
            )
            .execution_options(yield_per=YIELD_PER)
        )
        for row in roots:
            if row[0] not in threads:  # found through an earlier slice too
                root = _item(row, private_groups, same)
                threads[root.content_id] = Thread(root)
    for part in in_parts(threads):
        for row in session.execute(
            select_columns(col(DigestContent.thread_root_id), *ITEM_COLUMNS)
            .where(
                *_live_replies(since, until),
                in_list(DigestContent.thread_root_id, part),
            )
            .execution_options(yield_per=YIELD_PER)
        ):
            thread = threads[row[0]]
            _root, _id, _kind, author_id, group_id, visibility, _at, _tags, mentions = cast(
                Sequence[Any], row
            )
            if _public(visibility, group_id, private_groups):
                author_id = same.setdefault(author_id, author_id)
                thread.public_replies += 1
                if author_id not in thread.public_authors:
                    thread.public_authors += (author_id,)
                if mentions:
                    thread.public_mentions = thread.public_mentions.union(
                        same.setdefault(key, key) for key in mentions
                    )
            else:
                thread.gated += (_item(row[1:], private_groups, same),)
    return Window.of(threads.values(), since=since, until=until, private_groups=private_groups)


class Windows:
    """Each window's content, read once for all the chunks of a round (sorted by window).

    One window is held at a time. It is read again when a group turned private since,
    or when an item it would show was deleted, hidden or moved (`forget`): what a digest
    shows is checked at build time.
    """

    def __init__(self, requests: Iterable[Request], *, now: datetime) -> None:
        self.followers: dict[tuple[datetime, datetime], set[UUID]] = defaultdict(set)
        for request in requests:
            self.followers[window_of(request, now=now)].add(request.user_id)
        self.held: Window | None = None

    def get(
        self, session: Session, since: datetime, until: datetime, private_groups: frozenset[UUID]
    ) -> Window:
        held = self.held
        if (
            held is not None
            and (held.since, held.until) == (since, until)
            and held.private_groups == private_groups
        ):
            return held
        # Let the last one go before reading the next, this local reference too (it kept
        # the last window alive: two windows at once were the round's peak).
        del held
        self.held = None
        followed = followed_sources(session, self.followers[(since, until)])
        window = load_window(
            session, followed, since=since, until=until, private_groups=private_groups
        )
        self.held = window
        return window

    def forget(self) -> None:
        self.held = None


def window_of(request: Request, *, now: datetime) -> tuple[datetime, datetime]:
    """The request's `[since, until)`."""
    start, end = check_window(period=request.period, now=now, until=request.until)
    return (request.since if request.since is not None else start), end


Ranking = tuple[DigestPeriod, datetime, datetime, list[Section]]


def build_digests(
    *,
    session: Session,
    requests: Sequence[Request],
    now: datetime,
    exclude_sent: bool = True,
    windows: Windows | None = None,
) -> dict[UUID, DigestPublic]:
    """Everyone's digest in `requests` (one per person), picked by followed source.

    With `exclude_sent`, items an earlier digest of the person carried are left out (as
    `build_digest`'s `exclude`). `windows` shares the content read between the calls of
    a round (the requests of each call among those it was made with).
    """
    windows = windows or Windows(requests, now=now)
    readers = load_readers(session, [r.user_id for r in requests], with_sent=exclude_sent)
    private_groups = private_groups_now(session)
    by_window: dict[tuple[datetime, datetime], list[Request]] = defaultdict(list)
    for request in requests:
        by_window[window_of(request, now=now)].append(request)
    for _attempt in range(2):
        ranked: dict[UUID, Ranking] = {}
        used: dict[tuple[datetime, datetime], Window] = {}
        for (since, end), group in by_window.items():
            for request in group:
                reader = readers[request.user_id]
                sections: list[Section] = []
                if reader.follows:
                    window = used[(since, end)] = windows.get(session, since, end, private_groups)
                    sections = window.sections_for(reader)
                ranked[request.user_id] = (request.period, since, end, sections)
        rows = shown_rows(session, ranked)
        if not changed_since_read(rows, ranked, used):
            break
        windows.forget()  # something shown changed since the window was read: read again
    digests = render_digests(session, ranked, rows, now=now)
    for window in used.values():
        # Shared by this call's digests; kept for a whole round it held every chunk's items.
        window.shared.clear()
    return digests


SHOWN_COLUMNS: tuple[Any, ...] = (
    DigestContent.content_id,
    DigestContent.kind,
    DigestContent.title,
    DigestContent.excerpt,
    DigestContent.author_id,
    DigestContent.group_id,
    DigestContent.tags,
    DigestContent.created_at,
    DigestContent.visibility,
    DigestContent.deleted,
    DigestContent.hidden,
)


def shown_rows(session: Session, ranked: Mapping[UUID, Ranking]) -> dict[UUID, Any]:
    """What every shown item shows (titles, excerpts) and whether it may still be shown."""
    shown = {
        r.candidate.content_id
        for _p, _s, _e, sections in ranked.values()
        for section in sections
        for r in section.items
    }
    rows: dict[UUID, Any] = {}
    for part in in_parts(shown):
        # Columns, not ORM objects: a chunk shows thousands of items.
        query = select_columns(*SHOWN_COLUMNS).where(in_list(DigestContent.content_id, part))
        rows.update((row.content_id, row) for row in session.execute(query))
    return rows


def changed_since_read(
    rows: Mapping[UUID, Any],
    ranked: Mapping[UUID, Ranking],
    windows: Mapping[tuple[datetime, datetime], Window],
) -> bool:
    """Whether an item to show was deleted, hidden or moved since its window was read."""
    for _period, since, end, sections in ranked.values():
        window = windows.get((since, end))
        if window is None:
            continue
        for section in sections:
            for item in section.items:
                row = rows.get(item.candidate.content_id)
                if row is None or row.deleted or row.hidden:
                    return True
                root = window.threads[window.position[row.content_id]].root
                public = _public(row.visibility, row.group_id, window.private_groups)
                if row.group_id != root.group_id or public != root.public:
                    return True
    return False


def render_digests(
    session: Session,
    ranked: Mapping[UUID, Ranking],
    rows: Mapping[UUID, Shown],
    *,
    now: datetime,
) -> dict[UUID, DigestPublic]:
    """Titles, excerpts and labels of the shown items only, for all the digests at once."""
    rendered: dict[RenderedKey, DigestItem] = {}  # an item shown alike in many digests
    people = {row.author_id for row in rows.values()} | {
        UUID(s.key)
        for _p, _s, _e, sections in ranked.values()
        for s in sections
        if s.reason == "person"
    }
    group_ids = {
        UUID(s.key)
        for _p, _s, _e, sections in ranked.values()
        for s in sections
        if s.reason == "group"
    }
    users = {
        u.user_id: u
        for part in in_parts(people)
        for u in session.exec(select(DigestUser).where(in_list(DigestUser.user_id, part)))
    }
    groups = {
        g.group_id: g
        for part in in_parts(group_ids)
        for g in session.exec(select(DigestGroup).where(in_list(DigestGroup.group_id, part)))
    }
    return {
        user_id: render_digest(
            user_id=user_id,
            period=period,
            since=since,
            until=end,
            now=now,
            sections=sections,
            rows=rows,
            people=users,
            groups=groups,
            rendered=rendered,
        )
        for user_id, (period, since, end, sections) in ranked.items()
    }
