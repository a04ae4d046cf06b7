"""The admin CLI against real databases and a real NATS server."""

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlmodel import Session, select
from typer.testing import CliRunner

from deploy.admin import ReplayReport, cli, replay_parked
from services.digests.main import create_app as create_digests_app
from services.identity.models import User
from shared.auth import KeyFiles, TokenIssuer, TokenVerifier, load_or_create_private_key
from shared.db import create_tables, make_engine
from shared.events.bus import Bus
from shared.events.consumer import Consumer, ConsumerRunner, Handler, ProcessedEvent
from shared.events.contracts import UserRegistered
from shared.events.envelope import CloudEvent, dead_letter_subject, replay_subject, wrap
from shared.events.outbox import OutboxMessage
from shared.ids import new_id
from shared.natsserver import free_port
from shared.settings import Settings
from shared.testing.fixtures import wait_for

runner = CliRunner()


def test_create_admin_creates_an_account_then_promotes_an_existing_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/identity.db"
    first = runner.invoke(
        cli,
        [
            "create-admin",
            "root",
            "--email",
            "root@example.org",
            "--password",
            "long-password",
            "--database-url",
            url,
        ],
    )
    assert first.exit_code == 0, first.output
    again = runner.invoke(
        cli,
        [
            "create-admin",
            "root",
            "--email",
            "x@example.org",
            "--password",
            "whatever-long",
            "--database-url",
            url,
        ],
    )
    assert again.exit_code == 0, again.output
    with Session(make_engine(url)) as session:
        users = session.exec(select(User)).all()
    assert [(user.handle, user.is_admin) for user in users] == [("root", True)]


def test_create_admin_rejects_a_bad_handle(tmp_path: Path) -> None:
    result = runner.invoke(
        cli,
        [
            "create-admin",
            "Not OK!",
            "--email",
            "a@example.org",
            "--password",
            "long-password",
            "--database-url",
            f"sqlite:///{tmp_path}/i.db",
        ],
    )
    assert result.exit_code != 0


def test_replay_puts_parked_messages_back_for_their_consumer_and_empties_the_park(
    nats_url: str,
) -> None:
    async def scenario() -> tuple[ReplayReport, list[bytes], int]:
        bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test")
        try:
            for body in (b"one", b"two"):
                await bus.js.publish(
                    dead_letter_subject("search-content"),
                    body,
                    headers={
                        "Knowflow-Original-Subject": "events.public.post.created.v1",
                        "Knowflow-Consumer": "search-content",
                    },
                )
            replay_view = await bus.js.subscribe(
                replay_subject("search-content", "events.public.post.created.v1"),
                ordered_consumer=True,
            )
            report = await replay_parked(nats_url, "KNOWFLOW", "search-content")
            bodies = [(await replay_view.next_msg(timeout=5)).data for _ in range(report.replayed)]
            info = await bus.js.stream_info(bus.dead_letter_stream)
            return report, bodies, info.state.messages
        finally:
            await bus.close()

    report, bodies, left = asyncio.run(scenario())
    assert report.replayed == 2 and sorted(bodies) == [b"one", b"two"]
    assert left == 0


class SeenBy:
    """Per consumer, the handles its handler accepted."""

    def __init__(self) -> None:
        self.handles: dict[str, list[str]] = {}

    def handler(self, durable: str) -> Handler:
        def accept(_session: Session, _envelope: CloudEvent, data: UserRegistered) -> None:
            self.handles.setdefault(durable, []).append(data.handle)

        return accept


def test_replay_sends_each_message_to_its_own_consumer_and_ends_when_one_is_parked_again(
    tmp_path: Path, nats_url: str
) -> None:
    seen = SeenBy()
    engine = make_engine(f"sqlite:///{tmp_path}/svc.db")
    create_tables(engine, [OutboxMessage, ProcessedEvent])
    subject = "events.public.user.registered.v1"

    def parked_event(handle: str) -> bytes:
        data = UserRegistered(user_id=new_id(), handle=handle, display_name=handle)
        return wrap(data, source="/t").model_dump_json().encode()

    async def scenario() -> tuple[ReplayReport, int]:
        bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test")
        runners = [
            ConsumerRunner(engine, bus, Consumer(name, {UserRegistered: seen.handler(name)}))
            for name in ("replay-a", "replay-b")
        ]
        tasks = [asyncio.create_task(runner.run()) for runner in runners]
        try:
            await asyncio.sleep(0.5)  # the durable consumers exist before anything is replayed
            parked = [
                ("replay-a", b"not json: parked again at once"),
                ("replay-a", parked_event("ada")),
                ("replay-b", parked_event("bob")),
            ]
            for consumer, body in parked:
                await bus.js.publish(
                    dead_letter_subject(consumer),
                    body,
                    headers={"Knowflow-Original-Subject": subject, "Knowflow-Consumer": consumer},
                )
            report = await asyncio.wait_for(replay_parked(nats_url, "KNOWFLOW", None), 60)
            info = await bus.js.stream_info(bus.dead_letter_stream)
            return report, info.state.messages
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await bus.close()

    report, left_parked = asyncio.run(scenario())
    assert (report.replayed, report.parked_again) == (3, 1)
    assert seen.handles == {"replay-a": ["ada"], "replay-b": ["bob"]}
    assert left_parked == 1  # the poison, parked again once, not replayed in a loop


def test_cli_lists_its_commands() -> None:
    result = runner.invoke(cli, ["--help"])
    for command in ("migrate", "create-admin", "reindex", "replay-dead-letters", "build-digests"):
        assert command in result.output


@pytest.fixture
def digests_url(tmp_path: Path, nats_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real digests service over HTTP, trusting tokens signed with the ops key file."""
    key_file = tmp_path / "jwt.pem"
    jwks = TokenIssuer(
        load_or_create_private_key(key_file),
        issuer="knowflow-identity",
        audience="knowflow",
        ttl_seconds=300,
    ).jwks()
    monkeypatch.setenv("KNOWFLOW_JWT_PRIVATE_KEY_FILE", str(key_file))
    monkeypatch.setenv("KNOWFLOW_DIGEST_SCHEDULE_ENABLED", "false")
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/digests.db", nats_url=nats_url, log_json=False
    )
    app = create_digests_app(
        settings,
        TokenVerifier(issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks=jwks),
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started)
        url = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("KNOWFLOW_DIGESTS_URL", url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_build_digests_asks_the_digests_service_as_an_admin_and_prints_its_report(
    digests_url: str,
) -> None:
    # Who gets what once is the digests service's own test (services/digests/tests/
    # test_delivery.py); here: the CLI reaches it with an admin token and shows the report.
    for _ in range(2):
        run = runner.invoke(cli, ["build-digests", "--period", "weekly"])
        assert run.exit_code == 0, run.output
        report = json.loads(run.output)
        assert report["period"] == "weekly"
        assert (report["sent"], report["nothing_new"], report["already_sent"]) == (0, 0, 0)


def test_build_digests_fails_on_a_bad_period(digests_url: str) -> None:
    result = runner.invoke(cli, ["build-digests", "--period", "hourly"])
    assert result.exit_code == 1


def test_rotate_signing_key_promotes_next_and_refuses_a_second_rotation_too_soon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "jwt.pem"
    monkeypatch.setenv("KNOWFLOW_JWT_PRIVATE_KEY_FILE", str(key_file))
    before = KeyFiles(key_file).load_or_create()
    first = runner.invoke(cli, ["rotate-signing-key"])
    assert first.exit_code == 0, first.output
    after = KeyFiles(key_file).load()
    assert after.current_kid == before.next_kid
    assert before.current_kid in {jwk["kid"] for jwk in after.jwks()["keys"]}
    again = runner.invoke(cli, ["rotate-signing-key"])
    assert again.exit_code == 1
    assert KeyFiles(key_file).load().current_kid == after.current_kid
    forced = runner.invoke(cli, ["rotate-signing-key", "--force"])
    assert forced.exit_code == 0, forced.output
    assert before.current_kid not in {
        jwk["kid"] for jwk in KeyFiles(key_file).load().jwks()["keys"]
    }
