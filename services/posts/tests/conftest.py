"""Fixtures for the posts service: the app on real NATS and SQLite, groups, a fake identity."""

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.posts.main import create_app
from services.posts.models import KnownMembership
from shared.auth import TokenIssuer
from shared.events.contracts import (
    GroupCreated,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupRole,
    GroupVisibility,
)
from shared.events.envelope import CloudEvent
from shared.events.outbox import OutboxMessage
from shared.ids import new_id
from shared.natsserver import free_port
from shared.testing.fixtures import ServiceClientFactory, wait_for

Headers = dict[str, str]


@dataclass
class User:
    id: UUID
    handle: str
    headers: Headers


@pytest.fixture
def unreachable_identity_url() -> str:
    """An identity URL nothing listens on: the projection alone decides."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def posts(
    service_client: ServiceClientFactory, unreachable_identity_url: str
) -> Iterator[TestClient]:
    """The posts service, with identity unreachable."""
    with service_client(create_app, name="posts", identity_url=unreachable_identity_url) as client:
        yield client


@pytest.fixture
def user(auth_header: Callable[..., Headers]) -> Callable[[str], User]:
    """`user("ada")` → a new user id with a signed token for it."""

    def make(handle: str) -> User:
        user_id = new_id()
        return User(user_id, handle, auth_header(user_id, handle))

    return make


def is_member(client: TestClient, group_id: UUID, user_id: UUID, member: bool = True) -> bool:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = session.get(KnownMembership, (group_id, user_id))
        return row is not None and row.is_member == member


def has_role(client: TestClient, group_id: UUID, user_id: UUID, role: str) -> bool:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = session.get(KnownMembership, (group_id, user_id))
        return row is not None and row.is_member and row.role == role


@dataclass
class Groups:
    """Drives the group projection the way identity does: by publishing its events."""

    client: TestClient
    publish: Callable[..., None]
    versions: dict[tuple[UUID, UUID], int] = field(default_factory=dict)

    def next_version(self, group_id: UUID, user_id: UUID) -> int:
        """Number membership changes as identity does: one more per change."""
        version = self.versions.get((group_id, user_id), 0) + 1
        self.versions[(group_id, user_id)] = version
        return version

    def create(self, owner: User, visibility: GroupVisibility = "private") -> UUID:
        group_id = new_id()
        self.publish(
            GroupCreated(
                group_id=group_id,
                visibility=visibility,
                slug=f"g-{group_id.hex[-8:]}",
                name="A group",
                owner_id=owner.id,
            ),
            GroupMemberAdded(
                group_id=group_id,
                visibility=visibility,
                user_id=owner.id,
                role="owner",
                version=self.next_version(group_id, owner.id),
            ),
        )
        wait_for(lambda: is_member(self.client, group_id, owner.id))
        return group_id

    def add(
        self,
        group_id: UUID,
        member: User,
        visibility: GroupVisibility = "private",
        role: GroupRole = "member",
    ) -> None:
        """Add a member, or (sent again) change their role, as identity's event says."""
        self.publish(
            GroupMemberAdded(
                group_id=group_id,
                visibility=visibility,
                user_id=member.id,
                role=role,
                version=self.next_version(group_id, member.id),
            )
        )
        wait_for(lambda: has_role(self.client, group_id, member.id, role))

    def remove(self, group_id: UUID, member: User, visibility: GroupVisibility = "private") -> None:
        self.publish(
            GroupMemberRemoved(
                group_id=group_id,
                visibility=visibility,
                user_id=member.id,
                version=self.next_version(group_id, member.id),
            )
        )
        wait_for(lambda: is_member(self.client, group_id, member.id, member=False))


@pytest.fixture
def groups(posts: TestClient, publish_events: Callable[..., None]) -> Groups:
    return Groups(posts, publish_events)


def outbox_events(client: TestClient) -> list[tuple[str, CloudEvent]]:
    """Every event the service recorded, oldest first, with the subject it goes to."""
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at))).all()
        return [(row.subject, CloudEvent.model_validate_json(row.payload)) for row in rows]


@dataclass
class IdentityStub:
    """A real HTTP server answering `GET /groups/{id}` as identity would."""

    url: str = ""
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen_authorization: list[str | None] = field(default_factory=list)

    def answer(
        self,
        group_id: UUID,
        visibility: GroupVisibility,
        is_member: bool,
        version: int = 1,
        owner_id: UUID | None = None,
    ) -> None:
        """From now on, answer for this group; `version` is the caller's membership version."""
        self.groups[str(group_id)] = {
            "visibility": visibility,
            "is_member": is_member,
            "membership_version": version,
            **({"owner_id": str(owner_id)} if owner_id else {}),
        }


@pytest.fixture
def identity_stub() -> Iterator[IdentityStub]:
    stub = IdentityStub()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            stub.seen_authorization.append(self.headers.get("Authorization"))
            group_id = self.path.removeprefix("/groups/")
            found = stub.groups.get(group_id)
            payload = json.dumps(found or {"status": 404}).encode()
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def admin(token_issuer: TokenIssuer) -> User:
    """An administrator (imports, knowledge health, any item)."""
    user_id = new_id()
    token = token_issuer.issue(user_id=user_id, handle="root", is_admin=True)
    return User(user_id, "root", {"Authorization": f"Bearer {token}"})


def ask(client: TestClient, asker: User, **fields: Any) -> dict[str, Any]:
    """Ask a question (201) and return it."""
    payload = {"title": "How do we rotate secrets?", "body": "Every how often?", **fields}
    response = client.post("/questions", json=payload, headers=asker.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def answer(
    client: TestClient, author: User, question_id: object, body: str = "Every 90 days."
) -> dict[str, Any]:
    """Answer a question (201) and return the answer."""
    response = client.post(
        f"/questions/{question_id}/answers", json={"body": body}, headers=author.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
