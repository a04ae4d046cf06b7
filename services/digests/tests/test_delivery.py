"""Sending digests: one `DigestReady` per person and window, private stays private, no repeats."""

import json
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from services.digests import delivery
from services.digests.delivery import (
    SETTLE,
    DigestRunReport,
    send_digests_now,
    send_due_digests,
)
from services.digests.models import DigestSent, DigestSentItem
from services.digests.tests.factories import content
from shared.events.contracts import (
    FollowCreated,
    GroupCreated,
    GroupMemberAdded,
    NotificationPreferencesUpdated,
    UserRegistered,
)
from shared.events.outbox import OutboxMessage
from shared.ids import new_id, utcnow
from shared.testing.fixtures import wait_for

Publish = Callable[..., None]
AuthHeader = Callable[..., dict[str, str]]
READY_SUBJECT = "events.restricted.digest.ready.v1"


def engine_of(client: TestClient) -> Engine:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def ready_events(client: TestClient) -> dict[str, dict[str, Any]]:
    """The recorded `DigestReady` envelopes, by recipient."""
    with Session(engine_of(client)) as session:
        rows = session.exec(
            select(OutboxMessage).where(OutboxMessage.subject == READY_SUBJECT)
        ).all()
    envelopes = [json.loads(row.payload) for row in rows]
    by_user = {envelope["data"]["user_id"]: envelope for envelope in envelopes}
    assert len(by_user) == len(envelopes), "more than one digest for someone"
    return by_user


def follow(follower: UUID, target_type: str, target: object) -> FollowCreated:
    return FollowCreated(follower_id=follower, target_type=target_type, target=str(target))


class World:
    """Bob posts publicly and in a private group; who follows what decides who hears of it."""

    def __init__(self, publish: Publish) -> None:
        self.bob, self.alice, self.eve, self.dave, self.carol = (new_id() for _ in range(5))
        self.group = new_id()
        self.public_post = content(author=self.bob, title="Public", hours_ago=3)
        self.private_post = content(
            author=self.bob, title="Secret", group_id=self.group, private=True, hours_ago=3
        )
        publish(
            UserRegistered(user_id=self.bob, handle="bob", display_name="Bob"),
            GroupCreated(
                group_id=self.group, visibility="private", slug="g", name="G", owner_id=self.eve
            ),
            GroupMemberAdded(
                group_id=self.group, visibility="private", user_id=self.eve, role="owner"
            ),
            self.public_post,
            self.private_post,
            follow(self.alice, "user", self.bob),  # sees the public post only
            follow(self.eve, "group", self.group),  # a member: sees the private post
            follow(self.dave, "group", self.group),  # not a member: sees nothing
            follow(self.carol, "tag", "quiet"),  # follows something with no items
        )


def daily_now(user: UUID, *, version: int = 1, zone: str = "UTC") -> NotificationPreferencesUpdated:
    """A preference whose latest daily window (UTC) ended at the start of this hour."""
    hour = (utcnow() - SETTLE).hour
    return NotificationPreferencesUpdated(
        user_id=user, digest_frequency="daily", digest_hour=hour, timezone=zone, version=version
    )


def all_sent(client: TestClient) -> bool:
    with Session(engine_of(client)) as session:
        rows = session.exec(
            select(OutboxMessage).where(OutboxMessage.subject == READY_SUBJECT)
        ).all()
    return bool(rows) and all(row.sent_at is not None for row in rows)


def test_each_person_gets_one_digest_ready_at_their_hour_with_what_they_may_see(
    client: TestClient, publish: Publish
) -> None:
    world = World(publish)
    publish(*(daily_now(user) for user in (world.alice, world.eve, world.dave, world.carol)))
    now = utcnow()
    report = send_due_digests(engine=engine_of(client), now=now)
    # Dave (not a member) and Carol (nothing matched) get nothing: no event.
    assert (report.sent, report.nothing_new, report.already_sent) == (2, 2, 0)

    events = ready_events(client)
    assert set(events) == {str(world.alice), str(world.eve)}
    alice = events[str(world.alice)]
    assert (alice["type"], alice["subject"]) == ("knowflow.digest.ready.v1", str(world.alice))
    assert alice["audience"] == "restricted"
    data = alice["data"]
    assert (data["period"], data["total_items"]) == ("daily", 1)
    until = (now - SETTLE).replace(minute=0, second=0, microsecond=0)
    assert data["until"].startswith(until.isoformat()[:19])
    assert data["since"].startswith((until - timedelta(days=1)).isoformat()[:19])
    [section] = data["sections"]
    assert (section["reason"], section["label"]) == ("person", "Bob (@bob)")
    [item] = section["items"]
    assert item["content_id"] == str(world.public_post.content_id)
    eve_items = [i for s in events[str(world.eve)]["data"]["sections"] for i in s["items"]]
    assert [i["content_id"] for i in eve_items] == [str(world.private_post.content_id)]
    wait_for(lambda: all_sent(client))  # the relay publishes what was committed


def test_people_without_a_preference_get_the_weekly_default_on_monday_at_nine_utc(
    client: TestClient, publish: Publish
) -> None:
    World(publish)
    with Session(engine_of(client)) as session:
        assert session.exec(select(DigestSent)).all() == []
    send_due_digests(engine=engine_of(client), now=utcnow())
    with Session(engine_of(client)) as session:
        rows = session.exec(select(DigestSent)).all()
    assert {row.period for row in rows} == {"weekly"}
    for row in rows:
        end = row.window_end
        assert (end.weekday(), end.hour, end.minute) == (0, 9, 0)


def test_never_means_no_digest(client: TestClient, publish: Publish) -> None:
    world = World(publish)
    publish(
        NotificationPreferencesUpdated(
            user_id=world.alice, digest_frequency="never", digest_hour=9, timezone="UTC", version=1
        )
    )
    send_due_digests(engine=engine_of(client), now=utcnow())
    assert str(world.alice) not in ready_events(client)
    with Session(engine_of(client)) as session:
        assert session.exec(select(DigestSent).where(DigestSent.user_id == world.alice)).all() == []


def test_a_preference_change_applies_and_an_older_version_does_not_undo_it(
    client: TestClient, publish: Publish
) -> None:
    world = World(publish)
    publish(
        daily_now(world.alice, version=3),
        NotificationPreferencesUpdated(  # stale: arrives later with a lower version
            user_id=world.alice, digest_frequency="never", digest_hour=9, timezone="UTC", version=2
        ),
    )
    send_due_digests(engine=engine_of(client), now=utcnow())
    assert ready_events(client)[str(world.alice)]["data"]["period"] == "daily"


def test_a_window_goes_out_once_and_a_later_one_never_repeats_an_item(
    client: TestClient, publish: Publish
) -> None:
    world = World(publish)
    publish(daily_now(world.alice))
    now = utcnow()
    first = send_due_digests(engine=engine_of(client), now=now)
    again = send_due_digests(engine=engine_of(client), now=now + timedelta(minutes=5))
    assert first.sent >= 1
    assert (again.sent, again.nothing_new) == (0, 0)
    assert again.already_sent == first.sent + first.nothing_new
    # A forced window ending now overlaps the sent one: Bob's post is not sent twice.
    forced = send_digests_now(engine=engine_of(client), period="daily", now=now)
    assert forced.sent == 0 and forced.nothing_new == 1
    newer = content(author=world.bob, title="Newer", hours_ago=0)
    publish(newer)
    later = send_digests_now(engine=engine_of(client), period="daily", now=utcnow() + SETTLE)
    assert later.sent == 1
    with Session(engine_of(client)) as session:
        sent = session.exec(
            select(DigestSentItem.content_id).where(DigestSentItem.user_id == world.alice)
        ).all()
    assert sorted(sent) == sorted([world.public_post.content_id, newer.content_id])


def test_concurrent_senders_send_each_persons_window_once(
    client: TestClient, publish: Publish
) -> None:
    world = World(publish)
    publish(daily_now(world.alice), daily_now(world.eve))
    now = utcnow()
    barrier = threading.Barrier(3)
    reports: list[DigestRunReport] = []

    def sender() -> None:
        barrier.wait()
        reports.append(send_due_digests(engine=engine_of(client), now=now))

    threads = [threading.Thread(target=sender) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(r.sent for r in reports) == 2
    assert len(ready_events(client)) == 2


def test_a_sender_that_loses_the_race_at_commit_sends_nothing(
    client: TestClient, publish: Publish, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both senders found the window due; the rival commits first, so the key stops the other."""
    world = World(publish)
    publish(daily_now(world.alice))
    now = utcnow()
    build = delivery.build_digests
    raced = threading.Event()
    rival: list[DigestRunReport] = []

    def rival_commits_first(**kwargs: Any) -> Any:
        if not raced.is_set():
            raced.set()
            thread = threading.Thread(
                target=lambda: rival.append(send_due_digests(engine=engine_of(client), now=now))
            )
            thread.start()
            thread.join(timeout=60)
        return build(**kwargs)

    monkeypatch.setattr(delivery, "build_digests", rival_commits_first)
    report = send_due_digests(engine=engine_of(client), now=now)
    # Alice's daily is due; on a Monday from 09:00 UTC the others' default weekly is too.
    # Whoever is due, the rival sent each once and the loser sent nothing.
    ready = ready_events(client)
    assert str(world.alice) in ready
    assert sum(r.sent for r in rival) == len(ready)
    assert report.sent == 0
    assert report.already_sent >= 1


def test_a_chunk_recorded_in_parts_is_still_one_transaction(
    client: TestClient, publish: Publish, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window lost in a later part rolls back the parts written before it: then each
    person is recorded alone, so the one whose window was free gets one digest, not two."""
    world = World(publish)
    publish(daily_now(world.alice), daily_now(world.eve))
    monkeypatch.setattr(delivery, "RECORD_PART", 1)
    now = utcnow()
    build = delivery.build_digests
    taken: list[UUID] = []

    def rival_takes_the_last_window(**kwargs: Any) -> Any:
        digests = build(**kwargs)
        if not taken:
            last = kwargs["requests"][-1]
            taken.append(last.user_id)
            with Session(engine_of(client)) as session:
                session.add(
                    DigestSent(
                        user_id=last.user_id,
                        period=last.period,
                        window_end=last.until,
                        sent_at=now,
                        items=0,
                    )
                )
                session.commit()
        return digests

    monkeypatch.setattr(delivery, "build_digests", rival_takes_the_last_window)
    report = send_due_digests(engine=engine_of(client), now=now)
    lost = taken[0]
    # One digest at most per person (`ready_events` checks): the first try was rolled back.
    events = ready_events(client)
    assert str(lost) not in events
    assert {str(world.alice), str(world.eve)} - {str(lost)} <= set(events)
    assert report.sent == len(events)
    assert report.already_sent >= 1
    with Session(engine_of(client)) as session:
        owners = set(session.exec(select(DigestSentItem.user_id)).all())
    assert lost not in owners


def test_nobody_with_follows_means_no_events(client: TestClient) -> None:
    report = send_due_digests(engine=engine_of(client), now=utcnow())
    assert (report.sent, report.nothing_new, report.already_sent) == (0, 0, 0)
    assert ready_events(client) == {}


def test_admin_send_is_403_for_non_admins_and_401_without_a_token(
    client: TestClient, auth_header: AuthHeader
) -> None:
    path = "/admin/digests/send"
    assert client.post(path, params={"period": "daily"}).status_code == 401
    response = client.post(path, params={"period": "daily"}, headers=auth_header())
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


def test_admin_send_sends_each_persons_latest_window_once(
    client: TestClient, publish: Publish, admin_header: dict[str, str]
) -> None:
    World(publish)  # nobody has a preference: everyone is weekly
    path = "/admin/digests/send"
    first = client.post(path, params={"period": "weekly"}, headers=admin_header)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["window_end"] is None and body["already_sent"] == 0
    again = client.post(path, params={"period": "weekly"}, headers=admin_header).json()
    assert again["sent"] == 0 and again["already_sent"] == body["sent"] + body["nothing_new"]
    assert client.post(path, params={"period": "daily"}, headers=admin_header).json()["sent"] == 0
    assert client.post(path, params={"period": "monthly"}, headers=admin_header).status_code == 422


def test_admin_force_sends_the_window_ending_now(
    client: TestClient, publish: Publish, admin_header: dict[str, str]
) -> None:
    world = World(publish)
    response = client.post(
        "/admin/digests/send", params={"period": "weekly", "force": "true"}, headers=admin_header
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["sent"], body["nothing_new"]) == (2, 2)
    assert set(ready_events(client)) == {str(world.alice), str(world.eve)}
