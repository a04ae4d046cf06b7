"""The admin CLI against real databases and a real NATS server."""

import asyncio
from pathlib import Path

from sqlmodel import Session, select
from typer.testing import CliRunner

from deploy.admin import cli, replay_parked
from services.identity.models import User
from shared.db import make_engine
from shared.events.bus import Bus
from shared.events.envelope import dead_letter_subject

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


def test_replay_puts_parked_messages_back_on_their_subject_and_empties_the_park(
    nats_url: str,
) -> None:
    async def scenario() -> tuple[int, list[bytes], int]:
        bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test")
        try:
            for body in (b"one", b"two"):
                await bus.js.publish(
                    dead_letter_subject("search-content"),
                    body,
                    headers={"Knowflow-Original-Subject": "events.public.post.created.v1"},
                )
            replay_view = await bus.js.subscribe(
                "events.public.post.created.v1", ordered_consumer=True
            )
            replayed = await replay_parked(nats_url, "KNOWFLOW", "search-content")
            bodies = [(await replay_view.next_msg(timeout=5)).data for _ in range(replayed)]
            info = await bus.js.stream_info(bus.dead_letter_stream)
            return replayed, bodies, info.state.messages
        finally:
            await bus.close()

    replayed, bodies, left = asyncio.run(scenario())
    assert replayed == 2 and sorted(bodies) == [b"one", b"two"]
    assert left == 0


def test_cli_lists_its_commands() -> None:
    result = runner.invoke(cli, ["--help"])
    for command in ("migrate", "create-admin", "reindex", "replay-dead-letters"):
        assert command in result.output
