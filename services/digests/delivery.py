"""Sending digests: one `DigestReady` per person with something to read, once per window.

A period's windows end on scheduled boundaries: daily at `hour_utc`, weekly on Monday at
`hour_utc`. Sending a window writes a `digests_run` row keyed by (period, window end) in
the same transaction as its events, so a second sender (another replica, a re-run, an
admin) finds the row, or fails on its key at commit, and sends nothing.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from services.digests.digest import build_digest
from services.digests.models import DigestFollow, DigestRun
from services.digests.schemas import DigestPeriod, DigestPublic
from services.digests.service import to_utc
from shared.events.contracts import DigestReady, DigestReadyItem, DigestReadySection
from shared.events.outbox import record_event
from shared.ids import utcnow
from shared.schedule import run_once

log = logging.getLogger(__name__)

SOURCE = "/knowflow/digests"
DEFAULT_HOUR_UTC = 6


@dataclass(frozen=True)
class DigestRunReport:
    period: DigestPeriod
    window_end: datetime
    sent: int
    already_sent: bool


def latest_boundary(*, period: DigestPeriod, now: datetime, hour_utc: int) -> datetime:
    """The last scheduled window end at or before `now` (weekly windows end on Mondays)."""
    now = to_utc(now)
    boundary = now.replace(hour=hour_utc, minute=0, second=0, microsecond=0)
    if period == "weekly":
        boundary -= timedelta(days=boundary.weekday())
    step = timedelta(days=7 if period == "weekly" else 1)
    return boundary if boundary <= now else boundary - step


def load_recipients(*, session: Session) -> list[UUID]:
    """Everyone who follows something now, in a stable order."""
    query = (
        select(DigestFollow.follower_id)
        .where(col(DigestFollow.active).is_(True))
        .distinct()
        .order_by(col(DigestFollow.follower_id))
    )
    return list(session.exec(query).all())


def digest_ready(digest: DigestPublic) -> DigestReady:
    """The event a notifier needs to deliver the digest without calling back."""
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
                items=[
                    DigestReadyItem.model_validate(
                        item.model_dump(include={"content_id", "kind", "title", "excerpt", "why"})
                    )
                    for item in section.items
                ],
            )
            for section in digest.sections
            if section.items
        ],
    )


def do_send_digests(
    *,
    session: Session,
    period: DigestPeriod,
    now: datetime,
    window_end: datetime | None = None,
    hour_utc: int = DEFAULT_HOUR_UTC,
) -> DigestRunReport:
    """Record the window's digests and its run row (window end: the latest boundary by default).

    A window already recorded sends nothing; a concurrent sender of the same window makes
    the flush (or the caller's commit) raise `IntegrityError`. Never commits.
    """
    end = (
        to_utc(window_end)
        if window_end
        else latest_boundary(period=period, now=now, hour_utc=hour_utc)
    )
    if session.get(DigestRun, (period, end)) is not None:
        return DigestRunReport(period=period, window_end=end, sent=0, already_sent=True)
    # Build every digest before writing, so the write transaction is short.
    ready = []
    for user_id in load_recipients(session=session):
        digest = build_digest(session=session, user_id=user_id, period=period, now=now, until=end)
        if digest.total_items:
            ready.append(digest_ready(digest))
    session.add(
        DigestRun(period=period, window_end=end, sent_at=to_utc(now), recipients=len(ready))
    )
    for event in ready:
        record_event(session, event, source=SOURCE)
    session.flush()
    return DigestRunReport(period=period, window_end=end, sent=len(ready), already_sent=False)


def send_digests(
    *,
    engine: Engine,
    period: DigestPeriod,
    now: datetime | None = None,
    window_end: datetime | None = None,
    hour_utc: int = DEFAULT_HOUR_UTC,
) -> DigestRunReport:
    """Send a window's digests in a transaction of their own; a window sent before sends none."""
    now = now or utcnow()
    end = (
        to_utc(window_end)
        if window_end
        else latest_boundary(period=period, now=now, hour_utc=hour_utc)
    )
    report, committed = run_once(
        engine,
        lambda session: do_send_digests(session=session, period=period, now=now, window_end=end),
    )
    if not committed or report is None:
        log.info("%s digests for %s were sent by another process", period, end.isoformat())
        return DigestRunReport(period=period, window_end=end, sent=0, already_sent=True)
    if not report.already_sent:
        log.info("sent %d %s digest(s) for %s", report.sent, period, end.isoformat())
    return report
