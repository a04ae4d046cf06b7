"""Webhook test helpers: the notifications service on real NATS (restartable on the same
database), real receiver processes, events published with known ids, admin tokens."""

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.notifications.main import create_app
from shared.auth import TokenIssuer, TokenVerifier
from shared.events.bus import Bus
from shared.events.contracts import PostCreated, UserRegistered
from shared.events.envelope import EventData, subject_for, wrap
from shared.ids import new_id, utcnow
from shared.natsserver import free_port
from shared.settings import Settings
from shared.testing.backends import fresh_database
from shared.testing.fixtures import wait_for

RECEIVER = Path(__file__).with_name("receiver.py")

# Seconds instead of hours: the schedule's shape, not its length, is what tests prove.
FAST = {
    "webhook_retry_schedule": [0.2, 0.3, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
    "webhook_dispatch_tick_seconds": 0.05,
    "webhook_timeout_seconds": 2.0,
    "webhook_consumer_ack_wait_seconds": 1.0,  # events fetched before a stop come back soon
}


@dataclass
class Receiver:
    """A receiver process (receiver.py) on a port of its own; can answer errors, die, return."""

    directory: Path
    secret: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> "Receiver":
        (self.directory / "ready").unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(RECEIVER),
                "--port",
                str(self.port),
                "--secret",
                self.secret,
                "--dir",
                str(self.directory),
            ]
        )
        wait_for(lambda: (self.directory / "ready").exists(), timeout=10)
        return self

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def answer(self, status: int) -> None:
        (self.directory / "status").write_text(str(status))

    def verified(self) -> list[dict[str, Any]]:
        log = self.directory / "verified.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [json.loads(line) for line in lines]

    def accepted_ids(self) -> list[str]:
        """Ids answered with a 2xx, one per arrival (duplicates kept: the receiver dedupes)."""
        return [line["id"] for line in self.verified() if 200 <= line["status"] < 300]

    def refused(self) -> list[str]:
        log = self.directory / "refused.log"
        return log.read_text().splitlines() if log.exists() else []

    def cut_off(self) -> list[str]:
        """Requests whose body ended early (the sender stopped mid-request)."""
        log = self.directory / "cut-off.log"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Callable[[str], Receiver]]:
    """`receivers(secret)` starts a receiver process; all are killed at the end."""
    started: list[Receiver] = []

    def start(secret: str) -> Receiver:
        receiver = Receiver(tmp_path / f"receiver-{len(started)}", secret)
        receiver.directory.mkdir()
        started.append(receiver.start())
        return receiver

    yield start
    for receiver in started:
        receiver.kill()


Notifier = Callable[..., AbstractContextManager[TestClient]]


@pytest.fixture
def notifier(tmp_path: Path, nats_url: str, token_issuer: TokenIssuer) -> Iterator[Notifier]:
    """`with notifier(**settings) as client:` runs the service; again: same database, a restart."""
    with fresh_database(tmp_path, "notifications") as database_url:

        @contextmanager
        def run(**overrides: Any) -> Iterator[TestClient]:
            settings = Settings(
                service_name="notifications",
                database_url=database_url,
                nats_url=nats_url,
                jwt_private_key_file=tmp_path / "jwt.pem",
                webhook_secret_key_file=tmp_path / "webhook-secrets.key",
                log_json=False,
                **{**FAST, **overrides},
            )
            verifier = TokenVerifier(
                issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks=token_issuer.jwks()
            )
            with TestClient(
                create_app(settings, verifier), raise_server_exceptions=False
            ) as client:
                yield client

        yield run


@pytest.fixture
def publish(nats_url: str) -> Callable[..., list[str]]:
    """`publish(*event_data)` puts CloudEvents on the real bus; returns their ids."""

    async def send(datas: tuple[EventData, ...]) -> list[str]:
        bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test-publisher")
        ids = []
        try:
            for data in datas:
                envelope = wrap(data, source="/knowflow/tests")
                await bus.js.publish(
                    subject_for(envelope.type, envelope.audience),
                    envelope.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": str(envelope.id)},
                )
                ids.append(str(envelope.id))
        finally:
            await bus.close()
        return ids

    def run(*datas: EventData) -> list[str]:
        return asyncio.run(send(datas))

    return run


@pytest.fixture
def admin(token_issuer: TokenIssuer) -> dict[str, str]:
    token = token_issuer.issue(user_id=new_id(), handle="root", is_admin=True)
    return {"Authorization": f"Bearer {token}"}


def register(client: TestClient, admin: dict[str, str], url: str, **body: Any) -> dict[str, Any]:
    response = client.post("/webhooks/endpoints", headers=admin, json={"url": url, **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def deliveries(
    client: TestClient, admin: dict[str, str], endpoint_id: str, **params: str
) -> list[dict[str, Any]]:
    """Every delivery of the endpoint (all pages), newest first."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": "100", **({"cursor": cursor} if cursor else {})}
        response = client.get(
            f"/webhooks/endpoints/{endpoint_id}/deliveries", headers=admin, params=query
        )
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def user_registered(handle: str = "ada") -> UserRegistered:
    return UserRegistered(user_id=new_id(), handle=handle, display_name=handle.title())


def post(
    *, group_id: Any = None, private: bool = False, body: str = "Worth knowing."
) -> PostCreated:
    now = utcnow()
    return PostCreated(
        content_id=new_id(),
        kind="post",
        author_id=new_id(),
        group_id=group_id,
        visibility="private" if private else "public",
        version=1,
        title=None,
        body=body,
        tags=[],
        mentions=[],
        parent_id=None,
        thread_id=None,
        created_at=now,
        updated_at=now,
    )
