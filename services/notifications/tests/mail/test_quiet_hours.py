"""Quiet hours: e-mail waits until they end in the person's zone (across midnight too)."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from services.notifications.mail.sender import send_due
from services.notifications.mail.transport import transport_for
from services.notifications.models import Notification, NotificationPreference
from services.notifications.service import mail_not_before
from services.notifications.tests.mail.conftest import SmtpServer, add_person, delivery, notify
from shared.ids import new_id
from shared.settings import Settings

BERLIN = "Europe/Berlin"  # UTC+1 in December, UTC+2 in summer


def quiet(start: str, end: str, zone: str = BERLIN) -> NotificationPreference:
    return NotificationPreference(user_id=new_id(), timezone=zone, quiet_start=start, quiet_end=end)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-12-02T20:30:00+00:00", "2026-12-02T20:30:00+00:00"),  # 21:30 local: not yet quiet
        ("2026-12-02T21:30:00+00:00", "2026-12-03T06:00:00+00:00"),  # 22:30: until tomorrow 07:00
        ("2026-12-02T03:30:00+00:00", "2026-12-02T06:00:00+00:00"),  # 04:30: until this 07:00
        ("2026-12-02T06:00:00+00:00", "2026-12-02T06:00:00+00:00"),  # 07:00 sharp: over
    ],
)
def test_quiet_hours_across_midnight_defer_to_their_local_end(now: str, expected: str) -> None:
    moment = datetime.fromisoformat(now)
    assert mail_not_before(quiet("22:00", "07:00"), moment) == datetime.fromisoformat(expected)


def test_quiet_hours_within_a_day_and_across_a_dst_change() -> None:
    lunch = quiet("12:00", "13:30")
    assert mail_not_before(lunch, datetime(2026, 12, 2, 11, 15, tzinfo=UTC)) == datetime(
        2026, 12, 2, 12, 30, tzinfo=UTC
    )
    # The night Berlin moves to summer time (29 March 2026): 07:00 local is 05:00 UTC.
    night = quiet("22:00", "07:00")
    assert mail_not_before(night, datetime(2026, 3, 28, 23, 0, tzinfo=UTC)) == datetime(
        2026, 3, 29, 5, 0, tzinfo=UTC
    )


def test_no_or_unreadable_quiet_hours_never_hold_mail_back() -> None:
    now = datetime(2026, 12, 2, 23, 0, tzinfo=UTC)
    assert mail_not_before(NotificationPreference(user_id=new_id()), now) == now
    assert mail_not_before(quiet("22:00", "07:00", zone="Mars/Olympus"), now) == now
    assert mail_not_before(quiet("late", "07:00"), now) == now


def test_a_mention_in_quiet_hours_waits_for_their_end_but_reaches_the_inbox_now(
    engine: Engine,
    smtp_server: Callable[..., SmtpServer],
    mail_settings: Callable[..., Settings],
) -> None:
    server = smtp_server()
    settings = mail_settings(smtp_url=f"smtp://127.0.0.1:{server.port}")
    ben = add_person(engine)
    local = datetime.now(ZoneInfo(BERLIN))
    with Session(engine) as session:
        session.add(
            NotificationPreference(
                user_id=ben,
                timezone=BERLIN,
                quiet_start=(local - timedelta(hours=1)).strftime("%H:%M"),
                quiet_end=(local + timedelta(hours=2)).strftime("%H:%M"),
            )
        )
        session.commit()
    notification_id = notify(engine, ben)
    with Session(engine) as session:
        assert session.get(Notification, notification_id) is not None  # in the inbox already
    not_before = delivery(engine, notification_id).not_before
    assert timedelta(minutes=100) < not_before - datetime.now(UTC) < timedelta(hours=2)

    send_due(engine, settings, transport_for(settings))
    assert server.messages() == []
    send_due(engine, settings, transport_for(settings), now=not_before + timedelta(seconds=1))
    assert len(server.messages()) == 1
