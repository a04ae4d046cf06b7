"""deploy/nats/nats.conf runs on the real nats-server with durable JetStream."""

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.natsserver import free_port, nats_server_binary, wait_for_port
from tests.deploy.conftest import REPO

NATS_CONF = REPO / "deploy" / "nats" / "nats.conf"


@pytest.fixture(scope="module")
def monitor_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The compose config, with only the store moved off /data and loopback ports."""
    workdir: Path = tmp_path_factory.mktemp("nats-compose-config")
    config = NATS_CONF.read_text().replace('store_dir: "/data"', f'store_dir: "{workdir}"')
    assert str(workdir) in config, "store_dir line changed: update this test"
    (workdir / "nats.conf").write_text(config)
    port, monitor_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            nats_server_binary(),
            *("-c", str(workdir / "nats.conf"), "-a", "127.0.0.1"),
            *("-p", str(port), "-m", str(monitor_port)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(monitor_port)
        yield f"http://127.0.0.1:{monitor_port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_config_is_accepted_by_nats_server() -> None:
    result = subprocess.run(
        [nats_server_binary(), "-c", str(NATS_CONF), "-t"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_healthcheck_url_answers_ok_with_jetstream(monitor_url: str) -> None:
    assert get_json(f"{monitor_url}/healthz?js-enabled-only=true") == {"status": "ok"}


def test_jetstream_fsyncs_every_write_to_the_file_store(monitor_url: str) -> None:
    config = get_json(f"{monitor_url}/varz")["jetstream"]["config"]
    assert config["sync_always"] is True
    assert config["store_dir"].endswith("/jetstream")
    assert config["max_storage"] > 0
