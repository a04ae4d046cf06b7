"""Delete on request (GDPR erasure), digests' part: the person's schedule and digest history go,
their name is the tombstone's, and nothing is built for them any more."""

import json
import re
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.digests.delivery import send_digests_now, send_due_digests
from services.digests.models import DigestSent, DigestSentItem, DigestUser
from services.digests.tests.factories import content
from services.digests.tests.test_delivery import daily_now, engine_of, follow, ready_events
from shared.events.contracts import (
    FollowDeleted,
    UserErasureRequested,
    UserProfileUpdated,
    UserRegistered,
)
from shared.events.outbox import OutboxMessage
from shared.ids import new_id, utcnow
from shared.testing.fixtures import wait_for

TOMBSTONE = "former-0123456789abcdef"


def reports(client: TestClient) -> list[dict[str, Any]]:
    with Session(engine_of(client)) as session:
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at))).all()
    envelopes = [json.loads(row.payload) for row in rows]
    return [e["data"] for e in envelopes if e["type"] == "knowflow.user.erasure_reported.v1"]


def test_erasure_forgets_the_schedule_and_history_and_builds_nothing_more(
    client: TestClient,
    publish: Callable[..., None],
    publish_events: Callable[..., None],
    admin_header: dict[str, str],
) -> None:
    ada, bob, carol = new_id(), new_id(), new_id()
    publish(
        UserRegistered(user_id=ada, handle="ada", display_name="Ada"),
        UserRegistered(user_id=bob, handle="bob", display_name="Bob"),
        UserRegistered(user_id=carol, handle="carol", display_name="Carol"),
        content(author=bob, title="Bob's public note", hours_ago=3),
        content(author=ada, title="Ada's public note", hours_ago=3),
        follow(ada, "user", bob),
        follow(carol, "user", ada),
        daily_now(ada),
        daily_now(carol),
    )
    send_due_digests(engine=engine_of(client), now=utcnow())
    assert {str(ada), str(carol)} <= set(ready_events(client))
    carols = client.get(f"/digests/users/{carol}", headers=admin_header).json()
    assert "Ada (@ada)" in json.dumps(carols)

    # What identity sends on an erasure: the follows ended, the tombstone's profile, the request.
    publish(
        FollowDeleted(follower_id=ada, target_type="user", target=str(bob)),
        FollowDeleted(follower_id=carol, target_type="user", target=str(ada)),
        UserProfileUpdated(
            user_id=ada, handle=TOMBSTONE, display_name="Former member", bio="", skills=[]
        ),
    )
    publish_events(
        UserErasureRequested(
            erasure_id=new_id(),
            user_id=ada,
            requested_at=utcnow(),
            handle="ada",
            display_name="Ada",
            replacement_handle=TOMBSTONE,
            replacement_display_name="Former member",
        )
    )
    (report,) = wait_for(lambda: reports(client))
    assert report["service"] == "digests"
    assert report["removed"] == {
        "profile": 1,
        "preferences": 1,
        "digests_sent": 1,
        "digest_items_sent": 1,
    }
    with Session(engine_of(client)) as session:
        for model in (DigestSent, DigestSentItem):
            assert session.exec(select(model).where(model.user_id == ada)).all() == []
        person = session.get(DigestUser, ada)
        assert person is not None and person.handle == TOMBSTONE
    for reader in (carol, ada):
        digest = client.get(f"/digests/users/{reader}", headers=admin_header)
        assert digest.status_code == 200, digest.text
        assert not re.search(r"\bada\b", json.dumps(digest.json()), re.IGNORECASE)
    before = set(ready_events(client))
    send_digests_now(engine=engine_of(client), period="daily", now=utcnow())
    with Session(engine_of(client)) as session:
        assert session.exec(select(DigestSent).where(DigestSent.user_id == ada)).all() == []
    assert str(ada) in before  # the one before the erasure, and no other since
