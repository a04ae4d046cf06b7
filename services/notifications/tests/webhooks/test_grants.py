"""The grant check and the retry schedule (pure logic)."""

from uuid import uuid4

from services.notifications.webhooks.grants import Grant, public_types, restricted_types
from services.notifications.webhooks.service import retry_delay
from shared.settings import Settings

POST = "knowflow.post.created.v1"
CONTACT = "knowflow.user.contact_updated.v1"


def test_public_events_need_only_the_type() -> None:
    grant = Grant.of([POST], [], None)
    assert grant.covers(event_type=POST, audience="public", group_id=uuid4())
    assert not grant.covers(event_type="knowflow.post.updated.v1", audience="public", group_id=None)


def test_restricted_events_need_the_restricted_grant() -> None:
    public_only = Grant.of([POST, CONTACT], [], None)
    assert not public_only.covers(event_type=POST, audience="restricted", group_id=uuid4())
    assert not public_only.covers(event_type=CONTACT, audience="restricted", group_id=None)
    granted = Grant.of([], [POST, CONTACT], None)
    assert granted.covers(event_type=POST, audience="restricted", group_id=uuid4())
    assert granted.covers(event_type=CONTACT, audience="restricted", group_id=None)


def test_private_group_content_needs_the_group_when_groups_are_listed() -> None:
    mine, other = uuid4(), uuid4()
    grant = Grant.of([POST], [POST], [str(mine)])
    assert grant.covers(event_type=POST, audience="restricted", group_id=mine)
    assert not grant.covers(event_type=POST, audience="restricted", group_id=other)
    # Groups restrict restricted content only: an open group's public post is public.
    assert grant.covers(event_type=POST, audience="public", group_id=other)


def test_subscribable_types_follow_the_contract_audiences() -> None:
    assert POST in public_types() and POST in restricted_types()
    assert CONTACT not in public_types() and CONTACT in restricted_types()
    assert "knowflow.user.registered.v1" not in restricted_types()


def test_the_default_schedule_retries_for_more_than_a_day_then_gives_up() -> None:
    settings = Settings()
    delays = []
    attempt = 1
    while (delay := retry_delay(settings, attempt)) is not None:
        delays.append(delay)
        attempt += 1
    assert delays[0] == 5 and delays == sorted(delays)
    assert sum(delays) > 24 * 3600
    assert attempt == len(settings.webhook_retry_schedule) + 1  # the attempt that fails it
