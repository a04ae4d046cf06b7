"""The group projection fed by identity's events: idempotent, and late events lose."""

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlmodel import Session, col, select

from services.posts.consumers import (
    GROUPS_CONSUMER,
    on_group_created,
    on_member_added,
    on_member_removed,
)
from services.posts.models import KnownGroup, KnownMembership
from services.posts.tests.conftest import Groups, User, is_member
from shared.events.bus import Bus
from shared.events.contracts import GroupCreated, GroupMemberAdded, GroupMemberRemoved
from shared.events.envelope import CloudEvent, subject_for, wrap
from shared.ids import new_id
from shared.testing.fixtures import wait_for


def publish_envelopes(nats_url: str, *envelopes: CloudEvent, replay: bool = False) -> None:
    """Put these exact envelopes on the bus; a replay skips JetStream's de-duplication by id,
    as a re-published stream or a dead-letter replay would, so the consumer sees them again."""

    async def publish() -> None:
        bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test-replayer")
        try:
            for envelope in envelopes:
                headers = None if replay else {"Nats-Msg-Id": str(envelope.id)}
                await bus.js.publish(
                    subject_for(envelope.type, envelope.audience),
                    envelope.model_dump_json().encode(),
                    headers=headers,
                )
        finally:
            await bus.close()

    asyncio.run(publish())


def settled(outcome: str) -> float:
    """How many events the posts group consumer settled with this outcome (its metric)."""
    labels = {"service": "posts", "consumer": GROUPS_CONSUMER, "outcome": outcome}
    return REGISTRY.get_sample_value("knowflow_events_consumed_total", labels) or 0.0


def projection_of(client: TestClient, group_id: UUID) -> tuple[Any, ...]:
    """Every stored fact about one group, as comparable values."""
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        group = session.get(KnownGroup, group_id)
        rows = session.exec(
            select(KnownMembership)
            .where(KnownMembership.group_id == group_id)
            .order_by(col(KnownMembership.user_id))
        ).all()
        return (
            group and group.model_dump(),
            [row.model_dump() for row in rows],
        )


def test_group_events_on_the_bus_build_the_membership_projection(
    posts: TestClient, groups: Groups, user: Callable[[str], User]
) -> None:
    ada, bob = user("ada"), user("bob")
    group_id = groups.create(ada, "private")
    groups.add(group_id, bob)
    with Session(posts.app.state.engine) as session:  # type: ignore[attr-defined]
        group = session.get(KnownGroup, group_id)
        assert group is not None and group.visibility == "private"
    assert is_member(posts, group_id, bob.id)
    groups.remove(group_id, bob)
    assert is_member(posts, group_id, bob.id, member=False)
    assert is_member(posts, group_id, ada.id)


def test_replayed_group_events_change_nothing(
    posts: TestClient, nats_url: str, user: Callable[[str], User]
) -> None:
    ada, bob = user("ada"), user("bob")
    group_id = new_id()
    events = [
        wrap(data, source="/knowflow/identity")
        for data in (
            GroupCreated(
                group_id=group_id, visibility="private", slug="team", name="Team", owner_id=ada.id
            ),
            GroupMemberAdded(
                group_id=group_id, visibility="private", user_id=ada.id, role="owner", version=1
            ),
            GroupMemberAdded(
                group_id=group_id, visibility="private", user_id=bob.id, role="member", version=1
            ),
            GroupMemberRemoved(group_id=group_id, visibility="private", user_id=bob.id, version=2),
        )
    ]
    publish_envelopes(nats_url, *events)
    wait_for(lambda: is_member(posts, group_id, bob.id, member=False))
    before = projection_of(posts, group_id)
    processed, duplicates = settled("processed"), settled("duplicate")

    # The very same envelopes (same ids) again, the removal first this time.
    replayed = [events[3], *events, events[2]]
    publish_envelopes(nats_url, *replayed, replay=True)
    wait_for(lambda: settled("duplicate") - duplicates >= len(replayed))

    assert settled("processed") == processed, "a replayed event was applied again"
    assert projection_of(posts, group_id) == before
    assert is_member(posts, group_id, ada.id)
    assert is_member(posts, group_id, bob.id, member=False)


def test_a_late_membership_event_does_not_override_a_newer_one(posts: TestClient) -> None:
    group_id, user_id = new_id(), new_id()
    added = wrap(
        GroupMemberAdded(
            group_id=group_id, visibility="private", user_id=user_id, role="member", version=1
        ),
        source="/test",
    )
    removed = wrap(
        GroupMemberRemoved(group_id=group_id, visibility="private", user_id=user_id, version=2),
        source="/test",
    )
    # Identity's version decides, not the clock: the older fact even carries a later time.
    added = added.model_copy(update={"time": removed.time + timedelta(seconds=1)})
    engine = posts.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        on_member_removed(session, removed, GroupMemberRemoved.model_validate(removed.data))
        session.commit()
    with Session(engine) as session:
        # Delivered after the removal, though it happened before it.
        on_member_added(session, added, GroupMemberAdded.model_validate(added.data))
        session.commit()
    with Session(engine) as session:
        membership = session.get(KnownMembership, (group_id, user_id))
        assert membership is not None and not membership.is_member


def test_group_created_alone_knows_the_group_but_no_members(posts: TestClient) -> None:
    group_id, owner_id = new_id(), new_id()
    event = wrap(
        GroupCreated(
            group_id=group_id, visibility="open", slug="solo", name="Solo", owner_id=owner_id
        ),
        source="/test",
    )
    engine = posts.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        on_group_created(session, event, GroupCreated.model_validate(event.data))
        session.commit()
    with Session(engine) as session:
        assert session.get(KnownGroup, group_id) is not None
        # Not even the owner: membership comes from the owner's own member_added event.
        assert session.get(KnownMembership, (group_id, owner_id)) is None
    added = wrap(
        GroupMemberAdded(
            group_id=group_id, visibility="open", user_id=owner_id, role="owner", version=1
        ),
        source="/test",
    )
    with Session(engine) as session:
        on_member_added(session, added, GroupMemberAdded.model_validate(added.data))
        session.commit()
    with Session(engine) as session:
        membership = session.get(KnownMembership, (group_id, owner_id))
        assert membership is not None and membership.is_member and membership.version == 1
