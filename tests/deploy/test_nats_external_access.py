"""The example NATS permissions: another system reads public events and nothing else."""

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.errors import Error as NatsError

from shared.natsserver import free_port, nats_server_binary, wait_for_port
from tests.deploy.conftest import REPO

EXAMPLE = REPO / "deploy" / "nats" / "external-access.example.conf"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    config = tmp_path / "nats.conf"
    # As an operator would: the example appended to the server's own config.
    config.write_text(f'jetstream {{ store_dir: "{tmp_path}" }}\n' + EXAMPLE.read_text())
    process = subprocess.Popen(
        [nats_server_binary(), "-c", str(config), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_other_systems_get_public_events_and_are_refused_restricted_ones(server: int) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        knowflow = await nats.connect(f"nats://knowflow:change-me-knowflow@127.0.0.1:{server}")
        analytics = await nats.connect(
            f"nats://analytics:change-me-analytics@127.0.0.1:{server}", error_cb=on_error
        )
        received: list[str] = []

        async def collect(message: nats.aio.msg.Msg) -> None:
            received.append(message.subject)

        await analytics.subscribe("events.public.>", cb=collect)
        await analytics.subscribe("events.restricted.>", cb=collect)
        await analytics.subscribe("events.>", cb=collect)
        await analytics.flush()
        await asyncio.sleep(0.2)
        await knowflow.publish("events.public.post.created.v1", b"public")
        await knowflow.publish("events.restricted.post.created.v1", b"private group content")
        await knowflow.flush()
        with pytest.raises((NatsError, TimeoutError)):
            # The JetStream API (which could read any stored subject) is refused too.
            await analytics.request("$JS.API.STREAM.INFO.KNOWFLOW", b"", timeout=1)
        await asyncio.sleep(0.5)
        await analytics.close()
        await knowflow.close()
        return received, errors

    received, errors = asyncio.run(scenario())
    assert received == ["events.public.post.created.v1"]
    assert any("permissions violation" in error.lower() for error in errors), errors
