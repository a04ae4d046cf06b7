"""Sending digests: one `DigestReady` per person and window, on each person's own schedule.

A person's windows end at their local hour (from `NotificationPreferencesUpdated`; without
one: weekly, 9:00, UTC, as in the notifications service) — every day, or on local Mondays.
Sending a person's window writes a `digests_sent` row keyed by (person, period, window
end) in the same transaction as the event, so a second sender (another replica, a
restart, an admin) finds the row, or fails on its key at commit, and sends nothing.
The items a digest carried are recorded (`digests_sent_item`) and never sent again; a
window where nothing new qualifies records its row and sends no event.
"""

import gc
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import groupby
from typing import cast
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine, insert
from sqlmodel import Session, col, select

from services.digests.batch import Request, Windows, build_digests, window_of
from services.digests.digest import PERIODS
from services.digests.models import DigestFollow, DigestPreference, DigestSent, DigestSentItem
from services.digests.schemas import DigestItem, DigestPeriod, DigestPublic
from shared.db import in_list
from shared.events.contracts import (
    ContentKind,
    DigestFrequency,
    DigestReady,
    DigestReadyItem,
    DigestReadySection,
)
from shared.events.outbox import OutboxMessage, record_event
from shared.ids import utcnow
from shared.schedule import run_once

log = logging.getLogger(__name__)

SOURCE = "/knowflow/digests"
# Events of the last moments of a window may still be on the bus when it ends.
SETTLE = timedelta(minutes=1)
# People whose digests are built together (their follows, memberships and digests held in
# memory at once) and recorded in one transaction.
CHUNK = 200
# Digests whose events and sent items are held at once while a chunk is recorded: all of a
# chunk's at once were its peak, 28 MB above the built digests at 200 people.
RECORD_PART = 50


@dataclass(frozen=True)
class Schedule:
    """When a person's digest goes out; the defaults are the notifications service's."""

    frequency: DigestFrequency = "weekly"
    hour: int = 9
    timezone: str = "UTC"

    def zone(self) -> tzinfo:
        """The IANA zone; an unknown name (a newer tz database elsewhere) falls back to UTC."""
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("unknown time zone %r: digests use UTC", self.timezone)
            return UTC


DEFAULT_SCHEDULE = Schedule()


def schedule_of(preference: DigestPreference | None) -> Schedule:
    if preference is None:
        return DEFAULT_SCHEDULE
    frequency: DigestFrequency = preference.frequency  # type: ignore[assignment]
    return Schedule(frequency=frequency, hour=preference.hour, timezone=preference.timezone)


def _local_hour(day: date, hour: int, zone: tzinfo) -> datetime:
    """`hour`:00 on `day` in `zone`, as UTC. In a DST gap the hour is read with the offset
    before the change (02:00 that does not exist is 03:00 new time); in a repeated hour,
    the first one. Either way the same instant on every replica."""
    return datetime.combine(day, time(hour), tzinfo=zone).astimezone(UTC)


def _step(period: DigestPeriod) -> timedelta:
    return timedelta(days=7 if period == "weekly" else 1)


def local_boundary(*, period: DigestPeriod, hour: int, zone: tzinfo, now: datetime) -> datetime:
    """The last window end at or before `now`: `hour`:00 local daily, or on local Mondays."""
    day = now.astimezone(zone).date()
    if period == "weekly":
        day -= timedelta(days=day.weekday())
    while (boundary := _local_hour(day, hour, zone)) > now:
        day -= _step(period)
    return boundary


def previous_boundary(
    *, period: DigestPeriod, hour: int, zone: tzinfo, boundary: datetime
) -> datetime:
    """The window end before `boundary` (23 or 25 hours earlier across a DST change)."""
    day = boundary.astimezone(zone).date() - _step(period)
    return _local_hour(day, hour, zone)


@dataclass(frozen=True)
class DueDigest:
    user_id: UUID
    period: DigestPeriod
    until: datetime
    since: datetime | None  # None: the period's length before `until`


@dataclass(frozen=True)
class DigestRunReport:
    sent: int  # digests recorded with their DigestReady event
    nothing_new: int  # windows recorded where nothing (new) qualified: no event
    already_sent: int  # windows recorded before (or by a concurrent sender)


def load_recipients(*, session: Session) -> list[UUID]:
    """Everyone who follows something now, in a stable order."""
    query = (
        select(DigestFollow.follower_id)
        .where(col(DigestFollow.active).is_(True))
        .distinct()
        .order_by(col(DigestFollow.follower_id))
    )
    return list(session.exec(query).all())


def _schedules(session: Session, users: list[UUID]) -> dict[UUID, Schedule]:
    rows = session.exec(select(DigestPreference).where(in_list(DigestPreference.user_id, users)))
    found = {row.user_id: schedule_of(row) for row in rows}
    return {user: found.get(user, DEFAULT_SCHEDULE) for user in users}


def find_due_digests(
    *, session: Session, now: datetime, period: DigestPeriod | None = None
) -> tuple[list[DueDigest], int]:
    """Everyone whose latest settled window has no digest yet, and how many already have one.

    `period` limits it to the people on that frequency (the admin's "send now").
    """
    settled = now - SETTLE
    users = load_recipients(session=session)
    schedules = _schedules(session, users)
    recent = {
        (user, kind, end)
        for user, kind, end in session.exec(
            select(DigestSent.user_id, DigestSent.period, DigestSent.window_end).where(
                col(DigestSent.window_end) > settled - timedelta(days=8)
            )
        )
    }
    due: list[DueDigest] = []
    already = 0
    for user in users:
        schedule = schedules[user]
        if schedule.frequency == "never" or period not in (None, schedule.frequency):
            continue
        kind: DigestPeriod = schedule.frequency
        zone = schedule.zone()
        end = local_boundary(period=kind, hour=schedule.hour, zone=zone, now=settled)
        if (user, kind, end) in recent:
            already += 1
            continue
        since = previous_boundary(period=kind, hour=schedule.hour, zone=zone, boundary=end)
        due.append(DueDigest(user_id=user, period=kind, until=end, since=since))
    return due, already


def ready_item(item: DigestItem) -> DigestReadyItem:
    return DigestReadyItem(
        content_id=item.content_id,
        kind=cast(ContentKind, item.kind),
        title=item.title,
        excerpt=item.excerpt,
        why=item.why,
    )


def digest_ready(
    digest: DigestPublic, shared: dict[int, DigestReadyItem] | None = None
) -> DigestReady:
    """The event a notifier needs to deliver the digest without calling back.

    `shared` maps rendered items (by identity: digests of a chunk share them) to theirs.
    """
    shared = {} if shared is None else shared

    def ready(item: DigestItem) -> DigestReadyItem:
        found = shared.get(id(item))
        if found is None:
            found = shared[id(item)] = ready_item(item)
        return found

    return DigestReady(
        user_id=digest.user_id,
        period=digest.period,
        since=digest.since,
        until=digest.until,
        total_items=digest.total_items,
        sections=[
            DigestReadySection(
                reason=section.reason,
                label=section.label,
                items=[ready(item) for item in section.items],
            )
            for section in digest.sections
            if section.items
        ],
    )


def record_digests(
    *, session: Session, dues: list[DueDigest], digests: dict[UUID, DigestPublic], now: datetime
) -> list[int]:
    """Record each person's built digest for its window (no event if nothing new); never commits.

    Returns the items sent to each. A concurrent sender of one of the windows makes a
    flush (or the caller's commit) raise `IntegrityError` on the `digests_sent` key. The
    digests are written RECORD_PART at a time, all in the caller's one transaction.
    """
    counts: list[int] = []
    for start in range(0, len(dues), RECORD_PART):
        counts.extend(_record_part(session, dues[start : start + RECORD_PART], digests, now))
    return counts


def _record_part(
    session: Session, dues: list[DueDigest], digests: dict[UUID, DigestPublic], now: datetime
) -> list[int]:
    sent_items: list[dict[str, object]] = []
    counts: list[int] = []
    messages: list[OutboxMessage] = []
    shared: dict[int, DigestReadyItem] = {}  # the digests share their rendered items
    for due in dues:
        digest = digests[due.user_id]
        row = DigestSent(
            user_id=due.user_id,
            period=due.period,
            window_end=due.until,
            sent_at=now,
            items=digest.total_items,
        )
        if digest.total_items:
            message = record_event(session, digest_ready(digest, shared), source=SOURCE)
            row.event_id = message.id
            messages.append(message)
            shown = {item.content_id for section in digest.sections for item in section.items}
            sent_items.extend(
                {"user_id": due.user_id, "content_id": content_id, "sent_at": now}
                for content_id in sorted(shown)
            )
        session.add(row)
        counts.append(digest.total_items)
    session.flush()  # the windows first: a lost race fails here, before the items
    if sent_items:  # an empty executemany would be one INSERT of nothing
        # Core, not the ORM's bulk insert: a round records a hundred items per person.
        session.execute(insert(DigestSentItem.__table__), sent_items)  # type: ignore[attr-defined]
    for message in messages:
        # Written to the transaction: its payload need not stay in memory until the commit.
        session.expunge(message)
    return counts


def _recorder(
    dues: list[DueDigest], digests: dict[UUID, DigestPublic], now: datetime
) -> Callable[[Session], list[int]]:
    def record(session: Session) -> list[int]:
        return record_digests(session=session, dues=dues, digests=digests, now=now)

    return record


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic garbage collection while a chunk is built and recorded.

    A chunk makes hundreds of thousands of short-lived objects, freed by reference
    counting when it is done; each automatic collection on the way walked the window and
    the chunk's live digests again (a quarter of a round's time). Cycles a chunk leaves
    are collected once collection resumes, so memory stays bounded by a chunk. The switch
    is the process's: cycles made by requests served meanwhile wait for it too.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def request_of(due: DueDigest) -> Request:
    return Request(due.user_id, due.period, due.until, due.since)


def send_chunk(
    engine: Engine, chunk: list[DueDigest], *, windows: Windows, now: datetime
) -> list[int | None]:
    """Build and record a chunk's digests: the items each got, or None if sent elsewhere.

    The chunk's digests are let go on return: only one chunk's are held at a time.
    """
    with Session(engine) as session:
        digests = build_digests(
            session=session, requests=[request_of(d) for d in chunk], now=now, windows=windows
        )
    items, committed = run_once(engine, _recorder(chunk, digests, now))
    if committed and items is not None:
        return list(items)
    outcomes: list[int | None] = []
    for one in chunk:
        alone, _ = run_once(engine, _recorder([one], digests, now))
        outcomes.append(alone[0] if alone else None)
    return outcomes


def chunks_by_window(due: list[DueDigest], *, now: datetime) -> Iterator[list[DueDigest]]:
    """`due` (sorted by window) CHUNK people at a time, a chunk within one window."""
    for _window, group in groupby(due, key=lambda d: window_of(request_of(d), now=now)):
        people = list(group)
        for start in range(0, len(people), CHUNK):
            yield people[start : start + CHUNK]


def send_each(*, engine: Engine, due: list[DueDigest], now: datetime) -> DigestRunReport:
    """Send the due digests, built a chunk of people at a time and recorded in one transaction
    per chunk; if another sender recorded one of them first, each of the chunk's digests is
    recorded in a transaction of its own (one person's window stops nobody else's)."""
    sent = nothing_new = lost = 0
    # By window, so that each window's content is read once and held while it is used; a
    # chunk never spans two windows, so only one is held at a time.
    due = sorted(due, key=lambda d: window_of(request_of(d), now=now))
    windows = Windows([request_of(d) for d in due], now=now)
    for chunk in chunks_by_window(due, now=now):
        with collector_paused():
            outcomes = send_chunk(engine, chunk, windows=windows, now=now)
        for outcome in outcomes:
            if outcome is None:
                lost += 1
            elif outcome:
                sent += 1
            else:
                nothing_new += 1
    if sent or lost:
        log.info("sent %d digest(s); %d were sent by another process", sent, lost)
    return DigestRunReport(sent=sent, nothing_new=nothing_new, already_sent=lost)


def send_due_digests(
    *, engine: Engine, now: datetime | None = None, period: DigestPeriod | None = None
) -> DigestRunReport:
    """Send every person's digest whose latest settled window has none yet."""
    now = now or utcnow()
    with Session(engine) as session:
        due, already = find_due_digests(session=session, now=now, period=period)
    report = send_each(engine=engine, due=due, now=now)
    return DigestRunReport(
        sent=report.sent,
        nothing_new=report.nothing_new,
        already_sent=report.already_sent + already,
    )


def send_digests_now(*, engine: Engine, period: DigestPeriod, now: datetime) -> DigestRunReport:
    """Send everyone on `period` the window ending now (an admin's forced send)."""
    end = now.replace(second=0, microsecond=0)
    with Session(engine) as session:
        users = load_recipients(session=session)
        schedules = _schedules(session, users)
    due = [
        DueDigest(user_id=user, period=period, until=end, since=end - PERIODS[period])
        for user in users
        if schedules[user].frequency == period
    ]
    return send_each(engine=engine, due=due, now=now)
