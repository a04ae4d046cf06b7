"""Delete on request (GDPR erasure), search's part, on both engines: after the erasure and the
updates posts and identity send with it, the person's name is found nowhere in search."""

import json
import re
from collections.abc import Callable
from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.search.models import SearchSkill
from services.search.tests.conftest import People, post, search_items, settle_content, updated
from shared.events.contracts import UserErasureRequested, UserProfileUpdated
from shared.events.outbox import OutboxMessage
from shared.ids import new_id, utcnow
from shared.testing.fixtures import wait_for

TOMBSTONE = "former-0123456789abcdef"


def reports(client: TestClient) -> list[dict[str, Any]]:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at))).all()
    envelopes = [json.loads(row.payload) for row in rows]
    return [e["data"] for e in envelopes if e["type"] == "knowflow.user.erasure_reported.v1"]


def experts(client: TestClient, headers: dict[str, str], topic: str) -> list[dict[str, Any]]:
    response = client.get("/experts", params={"topic": topic}, headers=headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["experts"]
    return found


def declared_skills(client: TestClient, user_id: UUID) -> list[str]:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        rows = session.exec(select(SearchSkill).where(SearchSkill.user_id == user_id)).all()
    return sorted(row.skill for row in rows)


def test_an_erased_persons_name_is_found_nowhere_in_search(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    ada_id, bob_id = new_id(), new_id()
    reader = people.header(bob_id, "bob")
    publish_events(
        UserProfileUpdated(
            user_id=ada_id, handle="ada", display_name="Ada", bio="", skills=["kubernetes"]
        )
    )
    own = post(body="Kubernetes upgrade notes #kubernetes", author_id=ada_id)
    mention = post(body="Ask @ada about kubernetes upgrades", author_id=bob_id)
    settle_content(search_client, reader, publish_events, own, mention)
    wait_for(
        lambda: any(e["handle"] == "ada" for e in experts(search_client, reader, "kubernetes"))
    )
    wait_for(lambda: declared_skills(search_client, ada_id) == ["kubernetes"])

    # What identity and posts send on an erasure: the request, the tombstone's profile, and
    # every item that named the person, rewritten. The request goes first and alone here:
    # it and the profile are applied by different consumers, so sent together, the
    # tombstone's empty skills may land first and leave the erasure none to count.
    publish_events(
        UserErasureRequested(
            erasure_id=new_id(),
            user_id=ada_id,
            requested_at=utcnow(),
            handle="ada",
            display_name="Ada",
            replacement_handle=TOMBSTONE,
            replacement_display_name="Former member",
        )
    )
    (report,) = wait_for(lambda: reports(search_client))
    assert report["service"] == "search"
    assert report["removed"] == {"profile": 1, "skills": 1}
    publish_events(
        UserProfileUpdated(
            user_id=ada_id, handle=TOMBSTONE, display_name="Former member", bio="", skills=[]
        )
    )
    scrubbed = updated(
        mention, version=2, body="Ask [former member] about kubernetes upgrades", mentions=[]
    )
    settle_content(search_client, reader, publish_events, scrubbed)

    def nameless() -> bool:
        found = [
            *search_items(search_client, reader, "kubernetes"),
            *experts(search_client, reader, "kubernetes"),
        ]
        text = json.dumps(found)
        return bool(found) and not re.search(r"\bada\b", text, re.IGNORECASE)

    wait_for(nameless)
    assert search_items(search_client, reader, "ada") == []
    named = {e["user_id"]: e["handle"] for e in experts(search_client, reader, "kubernetes")}
    assert named[str(ada_id)] == TOMBSTONE and named[str(bob_id)] is None
    assert declared_skills(search_client, ada_id) == []
