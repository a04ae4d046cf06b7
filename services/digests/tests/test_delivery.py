"""Sending digests: one `DigestReady` per reader with items, private stays private, once a window."""

import json
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from services.digests import delivery
from services.digests.delivery import DigestRunReport, do_send_digests, send_digests
from services.digests.models import DigestRun
from services.digests.tests.factories import content
from shared.events.contracts import (
    FollowCreated,
    GroupCreated,
    GroupMemberAdded,
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


def test_sending_records_one_digest_ready_per_follower_with_items(
    client: TestClient, publish: Publish
) -> None:
    world = World(publish)
    now = utcnow()
    with Session(engine_of(client)) as session:
        report = do_send_digests(session=session, period="daily", now=now, window_end=now)
        session.commit()
    assert (report.sent, report.already_sent) == (2, False)

    events = ready_events(client)
    assert set(events) == {str(world.alice), str(world.eve)}
    alice = events[str(world.alice)]
    assert alice["type"] == "knowflow.digest.ready.v1"
    assert alice["subject"] == str(world.alice)
    assert alice["audience"] == "restricted"
    data = alice["data"]
    assert (data["period"], data["total_items"]) == ("daily", 1)
    assert data["until"].startswith(now.isoformat()[:19])
    assert data["since"].startswith((now - timedelta(days=1)).isoformat()[:19])
    [section] = data["sections"]
    assert (section["reason"], section["label"]) == ("person", "Bob (@bob)")
    [item] = section["items"]
    assert item["content_id"] == str(world.public_post.content_id)
    assert (item["kind"], item["title"]) == ("post", "Public")
    assert item["excerpt"] == "Something worth knowing."
    assert "Bob (@bob)" in item["why"]
    eve_items = [i for s in events[str(world.eve)]["data"]["sections"] for i in s["items"]]
    assert [i["content_id"] for i in eve_items] == [str(world.private_post.content_id)]

    with Session(engine_of(client)) as session:
        run = session.get(DigestRun, ("daily", now))
        assert run is not None and run.recipients == 2
        # The relay publishes what was committed.
    wait_for(lambda: all_sent(client))


def all_sent(client: TestClient) -> bool:
    with Session(engine_of(client)) as session:
        rows = session.exec(
            select(OutboxMessage).where(OutboxMessage.subject == READY_SUBJECT)
        ).all()
    return bool(rows) and all(row.sent_at is not None for row in rows)


def test_private_items_never_reach_a_follower_outside_the_group(
    client: TestClient, publish: Publish
) -> None:
    world = World(publish)
    now = utcnow()
    send_digests(engine=engine_of(client), period="weekly", now=now, window_end=now)
    events = ready_events(client)
    assert str(world.dave) not in events and str(world.carol) not in events
    secret = str(world.private_post.content_id)
    for user, envelope in events.items():
        shown = [i["content_id"] for s in envelope["data"]["sections"] for i in s["items"]]
        assert (secret in shown) == (user == str(world.eve))


def test_a_second_send_for_the_same_window_sends_nothing(
    client: TestClient, publish: Publish
) -> None:
    World(publish)
    now = utcnow()
    first = send_digests(engine=engine_of(client), period="daily", now=now, window_end=now)
    again = send_digests(
        engine=engine_of(client), period="daily", now=now + timedelta(minutes=5), window_end=now
    )
    assert (first.sent, first.already_sent) == (2, False)
    assert (again.sent, again.already_sent) == (0, True)
    assert len(ready_events(client)) == 2
    # Another period, or another window, is sent on its own.
    weekly = send_digests(engine=engine_of(client), period="weekly", now=now, window_end=now)
    assert weekly.sent == 2


def test_concurrent_senders_of_one_window_send_it_once(
    client: TestClient, publish: Publish
) -> None:
    World(publish)
    now = utcnow()
    barrier = threading.Barrier(3)
    reports = []

    def sender() -> None:
        barrier.wait()
        reports.append(
            send_digests(engine=engine_of(client), period="daily", now=now, window_end=now)
        )

    threads = [threading.Thread(target=sender) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted((r.sent, r.already_sent) for r in reports) == [(0, True), (0, True), (2, False)]
    assert len(ready_events(client)) == 2
    with Session(engine_of(client)) as session:
        runs = session.exec(select(DigestRun).where(col(DigestRun.period) == "daily")).all()
    assert len(runs) == 1


def test_a_sender_that_loses_the_race_at_commit_sends_nothing(
    client: TestClient, publish: Publish, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both senders found no run; the rival commits first, so the key stops the other."""
    World(publish)
    now = utcnow()
    load_recipients = delivery.load_recipients
    raced = threading.Event()
    rival: list[DigestRunReport] = []

    def rival_commits_first(*, session: Session) -> list[UUID]:
        if not raced.is_set():
            raced.set()
            thread = threading.Thread(
                target=lambda: rival.append(
                    send_digests(engine=engine_of(client), period="daily", now=now, window_end=now)
                )
            )
            thread.start()
            thread.join(timeout=60)
        return load_recipients(session=session)

    monkeypatch.setattr(delivery, "load_recipients", rival_commits_first)
    report = send_digests(engine=engine_of(client), period="daily", now=now, window_end=now)
    assert [(r.sent, r.already_sent) for r in rival] == [(2, False)]
    assert (report.sent, report.already_sent) == (0, True)
    assert len(ready_events(client)) == 2


def test_nobody_with_follows_means_a_run_and_no_events(client: TestClient) -> None:
    report = send_digests(engine=engine_of(client), period="daily", now=utcnow())
    assert (report.sent, report.already_sent) == (0, False)
    assert ready_events(client) == {}


def test_admin_send_is_403_for_non_admins_and_401_without_a_token(
    client: TestClient, auth_header: AuthHeader
) -> None:
    path = "/admin/digests/send"
    assert client.post(path, params={"period": "daily"}).status_code == 401
    response = client.post(path, params={"period": "daily"}, headers=auth_header())
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


def test_admin_send_sends_the_latest_window_once(
    client: TestClient, publish: Publish, admin_header: dict[str, str]
) -> None:
    World(publish)
    path = "/admin/digests/send"
    first = client.post(path, params={"period": "weekly"}, headers=admin_header)
    assert first.status_code == 200, first.text
    assert first.json()["already_sent"] is False
    again = client.post(path, params={"period": "weekly"}, headers=admin_header)
    assert again.status_code == 200
    assert again.json() == {**first.json(), "sent": 0, "already_sent": True}
    assert client.post(path, params={"period": "monthly"}, headers=admin_header).status_code == 422


def test_admin_force_sends_the_window_ending_now(
    client: TestClient, publish: Publish, admin_header: dict[str, str]
) -> None:
    world = World(publish)
    response = client.post(
        "/admin/digests/send", params={"period": "daily", "force": "true"}, headers=admin_header
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["sent"], body["already_sent"]) == (2, False)
    assert set(ready_events(client)) == {str(world.alice), str(world.eve)}
