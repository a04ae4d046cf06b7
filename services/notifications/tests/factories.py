"""Test data: people, groups and content events, and inbox readers."""

from datetime import timedelta
from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient

from shared.events.contracts import (
    ContentKind,
    ContentSnapshot,
    GroupCreated,
    GroupMemberAdded,
    PostCreated,
    UserRegistered,
)
from shared.events.envelope import EventData
from shared.ids import new_id, utcnow


def person(handle: str, display_name: str = "") -> tuple[UUID, UserRegistered]:
    user_id = new_id()
    return user_id, UserRegistered(
        user_id=user_id, handle=handle, display_name=display_name or handle.title()
    )


def private_group(
    owner: UUID, *members: UUID, name: str = "Secret"
) -> tuple[UUID, list[EventData]]:
    group_id = new_id()
    events: list[EventData] = [
        GroupCreated(group_id=group_id, visibility="private", slug="s", name=name, owner_id=owner),
        GroupMemberAdded(
            group_id=group_id,
            visibility="private",
            user_id=owner,
            role="owner",
            version=1,
            added_by=owner,
        ),
    ]
    events += [
        GroupMemberAdded(
            group_id=group_id,
            visibility="private",
            user_id=member,
            role="member",
            version=1,
            added_by=owner,
        )
        for member in members
    ]
    return group_id, events


def content(
    *,
    author: UUID,
    model: type[ContentSnapshot] = PostCreated,
    content_id: UUID | None = None,
    kind: ContentKind = "post",
    group_id: UUID | None = None,
    title: str | None = None,
    mentions: tuple[str, ...] = (),
    parent_id: UUID | None = None,
    thread_id: UUID | None = None,
    hours_ago: float = 0.1,
    version: int = 1,
) -> Any:
    """A content snapshot created `hours_ago` (private when in a group)."""
    created = utcnow() - timedelta(hours=hours_ago)
    return model(
        content_id=content_id or new_id(),
        kind=kind,
        author_id=author,
        group_id=group_id,
        visibility="private" if group_id else "public",
        version=version,
        title=title,
        body="Something worth knowing.",
        tags=[],
        mentions=list(mentions),
        parent_id=parent_id,
        thread_id=thread_id or parent_id,
        created_at=created,
        updated_at=created,
    )


def inbox(client: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = client.get("/notifications", headers=headers, params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def unread(client: TestClient, headers: dict[str, str]) -> int:
    response = client.get("/notifications/unread-count", headers=headers)
    assert response.status_code == 200, response.text
    return int(response.json()["unread"])
