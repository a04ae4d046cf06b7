"""Building many people's digests at once, by followed source: the scheduled round's reading.

`build_digest` reads one person's digest with queries over all the window's content; for
a round of thousands that is people times content. Here a chunk of people sharing a window is
read together: their follows, memberships, handles and already-sent items in one query
each, then the content of the sources any of them follows (people, groups, tags, and the
threads followed people replied in) once, as plain columns, and each person's digest is
cut from that in memory. Memory is bounded by the chunk, not the population.

The result is the same digest `build_digest` gives (tested against it): the same rules of
visibility (public outside private groups, or in a group the person is a member of now,
read at build time), the same matches, the same ranking and rendering.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import ColumnElement, false, or_, union
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from services.digests.digest import (
    Follows,
    ThreadActivity,
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
from services.digests.ranking import SECTION_CAP, Candidate, Match, Section, rank
from services.digests.schemas import DigestPeriod, DigestPublic


@dataclass(frozen=True)
class Request:
    """One person's digest to build: whose, and the `[since, until)` window."""

    user_id: UUID
    period: DigestPeriod
    until: datetime
    since: datetime | None  # None: the period's length before `until`


@dataclass
class Reader:
    """What decides one person's digest, read at build time."""

    user_id: UUID
    follows: Follows = field(default_factory=lambda: Follows(frozenset(), frozenset(), frozenset()))
    member_of: frozenset[UUID] = frozenset()
    mention_keys: frozenset[str] = frozenset()
    sent_before: frozenset[UUID] = frozenset()


@dataclass(frozen=True, slots=True)
class Item:
    """A live item's columns, as the ranking needs them (no title or excerpt)."""

    content_id: UUID
    kind: str
    author_id: UUID
    group_id: UUID | None
    public: bool  # readable by anyone: public and outside private groups
    created_at: datetime
    tags: tuple[str, ...]
    mentions: frozenset[str]


def _in(column: Any, values: Iterable[object]) -> ColumnElement[bool]:
    wanted = list(values)
    return col(column).in_(wanted) if wanted else false()


def load_readers(session: Session, users: Sequence[UUID], *, with_sent: bool) -> dict[UUID, Reader]:
    """Follows, memberships, handles and already-sent items of `users`: one query each."""
    readers = {user: Reader(user_id=user, mention_keys=frozenset({str(user)})) for user in users}
    follow_rows: dict[UUID, list[tuple[str, str]]] = defaultdict(list)
    for follower, target_type, target in session.exec(
        select(DigestFollow.follower_id, DigestFollow.target_type, DigestFollow.target).where(
            col(DigestFollow.follower_id).in_(users), col(DigestFollow.active).is_(True)
        )
    ):
        follow_rows[follower].append((target_type, target))
    groups: dict[UUID, set[UUID]] = defaultdict(set)
    for user, group in session.exec(
        select(DigestMembership.user_id, DigestMembership.group_id).where(
            col(DigestMembership.user_id).in_(users), col(DigestMembership.active).is_(True)
        )
    ):
        groups[user].add(group)
    handles = dict(
        session.exec(
            select(DigestUser.user_id, DigestUser.handle).where(col(DigestUser.user_id).in_(users))
        ).all()
    )
    sent: dict[UUID, set[UUID]] = defaultdict(set)
    if with_sent:
        for user, content_id in session.exec(
            select(DigestSentItem.user_id, DigestSentItem.content_id).where(
                col(DigestSentItem.user_id).in_(users)
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


@dataclass(slots=True)
class Thread:
    """A root and its live replies in the window, with what everyone may read pre-folded."""

    root: Item
    public_replies: int = 0
    public_authors: dict[UUID, int] = field(default_factory=dict)
    public_mentions: frozenset[str] = frozenset()
    # Replies only some may read (in a private group, or not public): checked per person.
    gated: list[Item] = field(default_factory=list)
    # The matches the root can give, made once for everyone (as `matches_for` makes them).
    by_author: Match | None = None
    by_group: Match | None = None
    by_tags: tuple[Match, ...] = ()

    def __post_init__(self) -> None:
        root = self.root
        self.by_author = Match("author", str(root.author_id))
        self.by_group = None if root.group_id is None else Match("group", str(root.group_id))
        self.by_tags = tuple(Match("tag", tag) for tag in root.tags)

    def matches(self, follows: Follows, activity: ThreadActivity) -> tuple[Match, ...]:
        """`matches_for(self.root, follows, activity)`, from the matches made once."""
        root = self.root
        out: list[Match] = []
        if root.author_id in follows.users and self.by_author is not None:
            out.append(self.by_author)
        if self.by_group is not None and root.group_id in follows.groups:
            out.append(self.by_group)
        if follows.tags:
            out.extend(m for m in self.by_tags if m.key in follows.tags)
        if activity.followed_repliers:
            out.extend(
                Match("reply", str(uid)) for uid in sorted(activity.followed_repliers, key=str)
            )
        return tuple(out)


@dataclass
class Sources:
    """The window's content of the sources a chunk follows, indexed by source."""

    threads: dict[UUID, Thread]
    by_author: dict[UUID, list[UUID]]
    by_group: dict[UUID, list[UUID]]
    by_tag: dict[str, list[UUID]]
    # Roots of threads a person replied in (live replies in the window), by replier.
    # (root, reply public, reply's group): enough to tell who may read the reply.
    replied_by: dict[UUID, list[tuple[UUID, bool, UUID | None]]]


NO_MENTIONS: frozenset[str] = frozenset()
# Rows are streamed in batches of this many, not fetched all at once.
YIELD_PER = 1000


def _public(visibility: str, group_id: UUID | None, private_groups: frozenset[UUID]) -> bool:
    """Readable by anyone: public, and not in a private group."""
    return visibility == "public" and group_id not in private_groups


def _item(row: Sequence[Any], private_groups: frozenset[UUID]) -> Item:
    content_id, kind, author_id, group_id, visibility, created_at, tags, mentions = row
    return Item(
        content_id=content_id,
        kind=kind,
        author_id=author_id,
        group_id=group_id,
        public=_public(visibility, group_id, private_groups),
        created_at=created_at,
        tags=tuple(tags or ()),
        mentions=frozenset(mentions) if mentions else NO_MENTIONS,
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


def load_sources(
    session: Session, readers: Iterable[Reader], *, since: datetime, until: datetime
) -> Sources:
    """Each followed source's roots (new, or replied to in the window) and their replies, once."""
    users: set[UUID] = set()
    groups: set[UUID] = set()
    tags: set[str] = set()
    for reader in readers:
        users |= reader.follows.users
        groups |= reader.follows.groups
        tags |= reader.follows.tags
    private_groups = frozenset(
        session.exec(select(DigestGroup.group_id).where(DigestGroup.visibility == "private")).all()
    )
    replied_by: dict[UUID, list[tuple[UUID, bool, UUID | None]]] = defaultdict(list)
    if users:
        for row in session.execute(
            select_columns(
                col(DigestContent.thread_root_id),
                col(DigestContent.author_id),
                col(DigestContent.group_id),
                col(DigestContent.visibility),
            ).where(*_live_replies(since, until), _in(DigestContent.author_id, users))
        ):
            root_id, author_id, group_id, visibility = cast(Sequence[Any], row)
            replied_by[author_id].append(
                (root_id, _public(visibility, group_id, private_groups), group_id)
            )
    # The threads any of them may see: roots of followed sources, and threads a followed
    # person replied in.
    followed = union(
        select(DigestContent.content_id).where(
            col(DigestContent.thread_root_id) == col(DigestContent.content_id),
            or_(
                _in(DigestContent.author_id, users),
                _in(DigestContent.group_id, groups),
                col(DigestContent.content_id).in_(
                    select(DigestContentTag.content_id).where(_in(DigestContentTag.tag, tags))
                ),
            ),
        ),
        select(DigestContent.thread_root_id).where(
            *_live_replies(since, until), _in(DigestContent.author_id, users)
        ),
    ).subquery()
    followed_ids = select(followed.c[0])
    active_threads = select(DigestContent.thread_root_id).where(*_live_replies(since, until))
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
            col(DigestContent.content_id).in_(followed_ids),
        )
        .execution_options(yield_per=YIELD_PER)
    )
    threads: dict[UUID, Thread] = {}
    by_author: dict[UUID, list[UUID]] = defaultdict(list)
    by_group: dict[UUID, list[UUID]] = defaultdict(list)
    by_tag: dict[str, list[UUID]] = defaultdict(list)
    for row in roots:
        root = _item(row, private_groups)
        threads[root.content_id] = Thread(root)
        if root.author_id in users:
            by_author[root.author_id].append(root.content_id)
        if root.group_id is not None and root.group_id in groups:
            by_group[root.group_id].append(root.content_id)
        for tag in root.tags:
            if tag in tags:
                by_tag[tag].append(root.content_id)
    for row in session.execute(
        select_columns(col(DigestContent.thread_root_id), *ITEM_COLUMNS)
        .where(
            *_live_replies(since, until),
            col(DigestContent.thread_root_id).in_(followed_ids),
        )
        .execution_options(yield_per=YIELD_PER)
    ):
        thread = threads.get(row[0])
        if thread is None:
            continue
        _root, _id, _kind, author_id, group_id, visibility, _at, _tags, mentions = cast(
            Sequence[Any], row
        )
        if _public(visibility, group_id, private_groups):
            thread.public_replies += 1
            thread.public_authors[author_id] = thread.public_authors.get(author_id, 0) + 1
            if mentions:
                thread.public_mentions = thread.public_mentions.union(mentions)
        else:
            thread.gated.append(_item(row[1:], private_groups))
    return Sources(threads, by_author, by_group, by_tag, replied_by)


def _activity(thread: Thread, reader: Reader) -> ThreadActivity:
    """The thread's replies the reader may read, folded as `load_thread_activity` does."""
    user, follows = reader.user_id, reader.follows
    replies = thread.public_replies
    others = len(thread.public_authors) > 1 or (
        bool(thread.public_authors) and user not in thread.public_authors
    )
    mentioned = not reader.mention_keys.isdisjoint(thread.public_mentions)
    repliers = set(follows.users.intersection(thread.public_authors))
    for reply in thread.gated:
        if reply.group_id is None or reply.group_id not in reader.member_of:
            continue
        replies += 1
        others = others or reply.author_id != user
        mentioned = mentioned or not reader.mention_keys.isdisjoint(reply.mentions)
        if reply.author_id in follows.users:
            repliers.add(reply.author_id)
    return ThreadActivity(
        replies=replies,
        replied_by_others=others,
        mentions_caller=mentioned,
        followed_repliers=frozenset(repliers),
    )


def _readable(public: bool, group_id: UUID | None, reader: Reader) -> bool:
    """Content the reader may read now: public outside private groups, or in their groups."""
    return public or (group_id is not None and group_id in reader.member_of)


def candidates_for(
    reader: Reader, sources: Sources, *, since: datetime, exclude: frozenset[UUID]
) -> list[Candidate]:
    """The reader's candidates, as `build_digest` finds them with its queries."""
    follows = reader.follows
    ids: set[UUID] = set()
    for user in follows.users:
        ids.update(sources.by_author.get(user, ()))
        ids.update(
            root
            for root, public, group_id in sources.replied_by.get(user, ())
            if _readable(public, group_id, reader)
        )
    for group in follows.groups:
        ids.update(sources.by_group.get(group, ()))
    for tag in follows.tags:
        ids.update(sources.by_tag.get(tag, ()))
    out: list[Candidate] = []
    for content_id in ids:
        thread = sources.threads.get(content_id)
        if thread is None or content_id in exclude:
            continue
        root = thread.root
        if root.author_id == reader.user_id or not _readable(root.public, root.group_id, reader):
            continue
        info = _activity(thread, reader)
        if root.created_at < since and not info.replied_by_others:
            continue
        matches = thread.matches(follows, info)
        if not matches:
            continue
        out.append(
            Candidate(
                content_id=content_id,
                kind=root.kind,
                created_at=root.created_at,
                replies=info.replies,
                mentions_caller=info.mentions_caller
                or not reader.mention_keys.isdisjoint(root.mentions),
                matches=matches,
            )
        )
    return out


def build_digests(
    *,
    session: Session,
    requests: Sequence[Request],
    now: datetime,
    exclude_sent: bool = True,
) -> dict[UUID, DigestPublic]:
    """Everyone's digest in `requests` (one per person), read by followed source.

    With `exclude_sent`, items an earlier digest of the person carried are left out (as
    `build_digest`'s `exclude`).
    """
    readers = load_readers(session, [r.user_id for r in requests], with_sent=exclude_sent)
    windows: dict[tuple[str, datetime, datetime], list[Request]] = defaultdict(list)
    for request in requests:
        start, end = check_window(period=request.period, now=now, until=request.until)
        since = request.since if request.since is not None else start
        windows[(request.period, since, end)].append(request)
    ranked: dict[UUID, tuple[DigestPeriod, datetime, datetime, list[Section]]] = {}
    for (_period, since, end), group in windows.items():
        followers = [readers[r.user_id] for r in group if readers[r.user_id].follows]
        sources = load_sources(session, followers, since=since, until=end)
        for request in group:
            reader = readers[request.user_id]
            sections: list[Section] = []
            if reader.follows:
                candidates = candidates_for(
                    reader, sources, since=since, exclude=reader.sent_before
                )
                sections = rank(candidates, since=since, until=end, cap=SECTION_CAP)
            ranked[request.user_id] = (request.period, since, end, sections)
    return render_digests(session, ranked, now=now)


def render_digests(
    session: Session,
    ranked: Mapping[UUID, tuple[DigestPeriod, datetime, datetime, list[Section]]],
    *,
    now: datetime,
) -> dict[UUID, DigestPublic]:
    """Titles, excerpts and labels of the shown items only, for all the digests at once."""
    shown = {
        r.candidate.content_id
        for _p, _s, _e, sections in ranked.values()
        for section in sections
        for r in section.items
    }
    rows = (
        {
            row.content_id: row
            for row in session.exec(
                select(DigestContent).where(col(DigestContent.content_id).in_(shown))
            )
        }
        if shown
        else {}
    )
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
    users = (
        {
            u.user_id: u
            for u in session.exec(select(DigestUser).where(col(DigestUser.user_id).in_(people)))
        }
        if people
        else {}
    )
    groups = (
        {
            g.group_id: g
            for g in session.exec(
                select(DigestGroup).where(col(DigestGroup.group_id).in_(group_ids))
            )
        }
        if group_ids
        else {}
    )
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
        )
        for user_id, (period, since, end, sections) in ranked.items()
    }
