"""Building one person's digest from the projections: a few set-based queries, no N+1.

Visibility is decided in the queries at build time: public items outside private
groups, plus items of groups the person is a member of *now*. A follow never grants
access by itself, so following a private group one has left yields nothing.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import UUID

from sqlalchemy import ColumnElement, and_, or_
from sqlmodel import Session, col, select

from services.digests.models import (
    DigestContent,
    DigestContentTag,
    DigestFollow,
    DigestGroup,
    DigestMembership,
    DigestUser,
)
from services.digests.ranking import SECTION_CAP, Candidate, Match, Section, explain, rank
from services.digests.schemas import DigestItem, DigestPeriod, DigestPublic, DigestSection
from shared.db import in_list
from shared.errors import BadRequest
from shared.ids import as_utc

PERIODS: Mapping[str, timedelta] = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
PERIOD_WORDS: Mapping[str, str] = {"daily": "in the day", "weekly": "in the week"}
# A past window may end at most this long ago (events older than the stream are gone).
MAX_LOOKBACK = timedelta(days=90)
# Clocks differ a little between machines; an `until` this far ahead is still "now".
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Follows:
    users: frozenset[UUID]
    tags: frozenset[str]
    groups: frozenset[UUID]

    def __bool__(self) -> bool:
        return bool(self.users or self.tags or self.groups)


def check_window(
    *, period: str, now: datetime, until: datetime | None
) -> tuple[datetime, datetime]:
    """The `[since, until)` window of a digest; an unknown period or a bad `until` is a 400."""
    if period not in PERIODS:
        raise BadRequest(f"period must be one of {', '.join(PERIODS)}")
    try:
        # `until` comes from a client: naive means UTC, another offset is converted.
        end = now if until is None else as_utc(until).astimezone(UTC)
    except OverflowError:
        raise BadRequest("until is out of range") from None
    if end > now + CLOCK_SKEW:
        raise BadRequest("until cannot be in the future")
    if end < now - MAX_LOOKBACK:
        raise BadRequest(f"until cannot be more than {MAX_LOOKBACK.days} days ago")
    return end - PERIODS[period], end


def load_follows(*, session: Session, user_id: UUID) -> Follows:
    """What the person follows now."""
    rows = session.exec(
        select(DigestFollow.target_type, DigestFollow.target).where(
            DigestFollow.follower_id == user_id, col(DigestFollow.active).is_(True)
        )
    ).all()
    return follows_from(user_id, rows)


def follows_from(user_id: UUID, rows: Iterable[tuple[str, str]]) -> Follows:
    """The person's active follow rows (target type, target) as a `Follows`."""
    users: set[UUID] = set()
    tags: set[str] = set()
    groups: set[UUID] = set()
    for target_type, target in rows:
        if target_type == "tag":
            tags.add(target)
            continue
        try:
            target_id = UUID(target)
        except ValueError:
            continue  # a malformed target can match nothing
        if target_type == "user" and target_id != user_id:
            users.add(target_id)
        elif target_type == "group":
            groups.add(target_id)
    return Follows(frozenset(users), frozenset(tags), frozenset(groups))


def visible_to(user_id: UUID) -> ColumnElement[bool]:
    """Content the person may read now: public outside private groups, or in their groups."""
    member_of = select(DigestMembership.group_id).where(
        DigestMembership.user_id == user_id, col(DigestMembership.active).is_(True)
    )
    private_groups = select(DigestGroup.group_id).where(DigestGroup.visibility == "private")
    return or_(
        and_(
            col(DigestContent.visibility) == "public",
            or_(
                col(DigestContent.group_id).is_(None),
                col(DigestContent.group_id).not_in(private_groups),
            ),
        ),
        col(DigestContent.group_id).in_(member_of),
    )


def _mention_keys(session: Session, user_id: UUID) -> set[str]:
    """How a mention of the person may be written: their handle or their id."""
    keys = {str(user_id)}
    user = session.get(DigestUser, user_id)
    if user is not None:
        keys.add(user.handle.lower())
    return keys


@dataclass
class ThreadActivity:
    replies: int = 0
    # The caller's own replies count, but alone they do not bring an old thread back.
    replied_by_others: bool = False
    mentions_caller: bool = False
    followed_repliers: frozenset[UUID] = frozenset()


def load_thread_activity(
    *,
    session: Session,
    user_id: UUID,
    follows: Follows,
    since: datetime,
    until: datetime,
    mention_keys: set[str],
) -> dict[UUID, ThreadActivity]:
    """Visible replies in the window, folded into their threads."""
    rows = session.exec(
        select(DigestContent.thread_root_id, DigestContent.author_id, DigestContent.mentions).where(
            col(DigestContent.thread_root_id) != col(DigestContent.content_id),
            col(DigestContent.deleted).is_(False),
            col(DigestContent.hidden).is_(False),
            col(DigestContent.created_at) >= since,
            col(DigestContent.created_at) < until,
            visible_to(user_id),
        )
    ).all()
    counts: dict[UUID, int] = defaultdict(int)
    mentioned: set[UUID] = set()
    others: set[UUID] = set()
    repliers: dict[UUID, set[UUID]] = defaultdict(set)
    for root_id, author_id, mentions in rows:
        counts[root_id] += 1
        if author_id != user_id:
            others.add(root_id)
        if mention_keys.intersection(mentions or ()):
            mentioned.add(root_id)
        if author_id in follows.users:
            repliers[root_id].add(author_id)
    return {
        root_id: ThreadActivity(
            replies=count,
            replied_by_others=root_id in others,
            mentions_caller=root_id in mentioned,
            followed_repliers=frozenset(repliers.get(root_id, ())),
        )
        for root_id, count in counts.items()
    }


def load_candidate_roots(
    *,
    session: Session,
    user_id: UUID,
    follows: Follows,
    since: datetime,
    until: datetime,
    activity: Mapping[UUID, ThreadActivity],
) -> list[DigestContent]:
    """Visible, live posts and articles by others, new or replied to in the window, followed."""
    tagged = select(DigestContentTag.content_id).where(
        in_list(DigestContentTag.tag, sorted(follows.tags))
    )
    replied_by_followed = [root for root, info in activity.items() if info.followed_repliers]
    replied_by_others = [root for root, info in activity.items() if info.replied_by_others]
    query = select(DigestContent).where(
        col(DigestContent.thread_root_id) == col(DigestContent.content_id),
        col(DigestContent.deleted).is_(False),
        col(DigestContent.hidden).is_(False),
        col(DigestContent.author_id) != user_id,
        col(DigestContent.created_at) < until,
        or_(
            col(DigestContent.created_at) >= since,
            in_list(DigestContent.content_id, replied_by_others),
        ),
        or_(
            in_list(DigestContent.author_id, follows.users),
            in_list(DigestContent.group_id, follows.groups),
            col(DigestContent.content_id).in_(tagged),
            in_list(DigestContent.content_id, replied_by_followed),
        ),
        visible_to(user_id),
    )
    return list(session.exec(query).all())


class Followable(Protocol):
    """What decides the follows an item matches (a `DigestContent` row or a batch's item)."""

    @property
    def author_id(self) -> UUID: ...
    @property
    def group_id(self) -> UUID | None: ...
    @property
    def tags(self) -> Sequence[str]: ...


def matches_for(row: Followable, follows: Follows, activity: ThreadActivity) -> list[Match]:
    """Every follow that brings this item into the digest."""
    matches: list[Match] = []
    if row.author_id in follows.users:
        matches.append(Match("author", str(row.author_id)))
    if row.group_id is not None and row.group_id in follows.groups:
        matches.append(Match("group", str(row.group_id)))
    matches.extend(Match("tag", tag) for tag in row.tags if tag in follows.tags)
    matches.extend(Match("reply", str(uid)) for uid in sorted(activity.followed_repliers, key=str))
    return matches


def _person_label(user: DigestUser | None) -> str:
    if user is None:
        return "someone you follow"
    return f"{user.display_name} (@{user.handle})"


def _group_label(group: DigestGroup | None) -> str:
    if group is None:
        return "a group"
    return group.name or group.slug or "a group"


def _load_labels(
    session: Session, user_ids: Iterable[UUID], group_ids: Iterable[UUID]
) -> tuple[dict[UUID, DigestUser], dict[UUID, DigestGroup]]:
    users = session.exec(select(DigestUser).where(in_list(DigestUser.user_id, set(user_ids)))).all()
    groups = session.exec(
        select(DigestGroup).where(in_list(DigestGroup.group_id, set(group_ids)))
    ).all()
    return {u.user_id: u for u in users}, {g.group_id: g for g in groups}


class Shown(Protocol):
    """What a digest shows of an item (a `DigestContent` row, or its columns)."""

    @property
    def content_id(self) -> UUID: ...
    @property
    def kind(self) -> str: ...
    @property
    def title(self) -> str | None: ...
    @property
    def excerpt(self) -> str: ...
    @property
    def author_id(self) -> UUID: ...
    @property
    def group_id(self) -> UUID | None: ...
    @property
    def tags(self) -> list[str]: ...
    @property
    def created_at(self) -> datetime: ...


# An item rendered for a section, by what decides how it reads: its id, the follow it is
# shown under, its replies, whether it mentions the reader, its score and the period.
RenderedKey = tuple[UUID, str, str, int, bool, float, str]


def _render_sections(
    sections: list[Section],
    rows: Mapping[UUID, Shown],
    period: str,
    people: Mapping[UUID, DigestUser],
    groups: Mapping[UUID, DigestGroup],
    rendered: dict[RenderedKey, DigestItem] | None = None,
) -> list[DigestSection]:
    """Sections with labels, author handles and the reason for each item, in words.

    `rendered` shares the items between digests (a popular item reads the same in many).
    """
    rendered = {} if rendered is None else rendered
    out: list[DigestSection] = []
    for section in sections:
        if section.reason == "person":
            label = _person_label(people.get(UUID(section.key)))
        elif section.reason == "group":
            label = _group_label(groups.get(UUID(section.key)))
        else:
            label = f"#{section.key}"
        items = []
        for ranked in section.items:
            candidate = ranked.candidate
            key = (
                candidate.content_id,
                ranked.match.via,
                ranked.match.key,
                candidate.replies,
                candidate.mentions_caller,
                ranked.score,
                period,
            )
            item = rendered.get(key)
            if item is not None:
                items.append(item)
                continue
            row = rows[candidate.content_id]
            author = people.get(row.author_id)
            item = rendered[key] = DigestItem(
                content_id=row.content_id,
                kind=row.kind,
                title=row.title,
                excerpt=row.excerpt,
                author_id=row.author_id,
                author_handle=author.handle if author else None,
                group_id=row.group_id,
                tags=list(row.tags),
                created_at=row.created_at,
                replies=ranked.candidate.replies,
                score=ranked.score,
                why=explain(ranked, label=label, period_word=PERIOD_WORDS[period]),
            )
            items.append(item)
        out.append(
            DigestSection(
                reason=section.reason,
                key=section.key,
                label=label,
                items=items,
                omitted=section.omitted,
            )
        )
    return out


def render_digest(
    *,
    user_id: UUID,
    period: DigestPeriod,
    since: datetime,
    until: datetime,
    now: datetime,
    sections: list[Section],
    rows: Mapping[UUID, Shown],
    people: Mapping[UUID, DigestUser],
    groups: Mapping[UUID, DigestGroup],
    rendered: dict[RenderedKey, DigestItem] | None = None,
) -> DigestPublic:
    """The digest of ranked sections; `rows`, `people` and `groups` hold what they show."""
    shown = _render_sections(sections, rows, period, people, groups, rendered)
    return DigestPublic(
        user_id=user_id,
        period=period,
        since=since,
        until=until,
        generated_at=now,
        sections=shown,
        total_items=sum(len(s.items) for s in shown),
        omitted_items=sum(s.omitted for s in shown),
    )


def build_digest(
    *,
    session: Session,
    user_id: UUID,
    period: DigestPeriod,
    now: datetime,
    until: datetime | None = None,
    since: datetime | None = None,
    exclude: frozenset[UUID] = frozenset(),
) -> DigestPublic:
    """The digest of what the person's follows produced in the period ending `until` (or now).

    `since` overrides the period's length (a scheduled window starts at the person's
    previous local boundary, 23 or 25 hours back on a DST day); items in `exclude` (sent
    by an earlier digest) are left out before ranking, so new items fill their places.
    """
    start, end = check_window(period=period, now=now, until=until)
    since = since if since is not None else start
    follows = load_follows(session=session, user_id=user_id)
    sections: list[Section] = []
    rows: dict[UUID, DigestContent] = {}
    if follows:
        mention_keys = _mention_keys(session, user_id)
        activity = load_thread_activity(
            session=session,
            user_id=user_id,
            follows=follows,
            since=since,
            until=end,
            mention_keys=mention_keys,
        )
        roots = load_candidate_roots(
            session=session,
            user_id=user_id,
            follows=follows,
            since=since,
            until=end,
            activity=activity,
        )
        candidates = []
        for row in roots:
            if row.content_id in exclude:
                continue
            info = activity.get(row.content_id, ThreadActivity())
            rows[row.content_id] = row
            candidates.append(
                Candidate(
                    content_id=row.content_id,
                    kind=row.kind,
                    created_at=row.created_at,
                    replies=info.replies,
                    mentions_caller=info.mentions_caller
                    or bool(mention_keys.intersection(row.mentions)),
                    matches=tuple(matches_for(row, follows, info)),
                )
            )
        sections = rank(candidates, since=since, until=end, cap=SECTION_CAP)
    people, groups = _load_labels(
        session,
        [row.author_id for row in rows.values()]
        + [UUID(s.key) for s in sections if s.reason == "person"],
        [UUID(s.key) for s in sections if s.reason == "group"],
    )
    return render_digest(
        user_id=user_id,
        period=period,
        since=since,
        until=end,
        now=now,
        sections=sections,
        rows=rows,
        people=people,
        groups=groups,
    )
