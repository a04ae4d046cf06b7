"""Two replicas of a service share one durable consumer: every event takes effect once."""

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from shared.events.contracts import GroupCreated
from shared.ids import new_id
from shared.natsserver import free_port
from shared.testing.backends import fresh_database
from shared.testing.fixtures import wait_for

EVENTS = 400


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database(tmp_path, "posts") as url:
        yield url


def start_replica(
    port: int, database_url: str, nats_url: str, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        "PATH": "/usr/bin:/bin",
        "KNOWFLOW_SERVICE_NAME": "posts",
        "KNOWFLOW_DATABASE_URL": database_url,
        "KNOWFLOW_NATS_URL": nats_url,
        "KNOWFLOW_IDENTITY_URL": "http://127.0.0.1:9",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "services.posts.main:app", "--port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def processed_by(port: int) -> int:
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    pattern = r'knowflow_events_consumed_total\{[^}]*consumer="posts-groups"[^}]*outcome="processed"[^}]*\} (\d+)'
    return sum(int(float(value)) for value in re.findall(pattern, metrics))


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_replicas_process_every_event_exactly_once_in_effect(
    tmp_path: Path, nats_url: str, database_url: str, publish_events: object
) -> None:
    ports = [free_port(), free_port()]
    # The first replica migrates the database; the second starts on the migrated schema.
    replicas = [start_replica(ports[0], database_url, nats_url, tmp_path / "replica-0.log")]
    try:
        wait_for(lambda: ready(ports[0]), timeout=30)
        replicas.append(start_replica(ports[1], database_url, nats_url, tmp_path / "replica-1.log"))
        wait_for(lambda: ready(ports[1]), timeout=30)
        groups = [
            GroupCreated(
                group_id=new_id(), visibility="open", slug=f"g{i}", name=f"G{i}", owner_id=new_id()
            )
            for i in range(EVENTS)
        ]
        publish_events(*groups)  # type: ignore[operator]
        engine = create_engine(database_url)

        def counts() -> tuple[int, int]:
            with engine.connect() as connection:
                rows: int = connection.execute(
                    text("SELECT count(*) FROM posts_group")
                ).scalar_one()
                processed: int = connection.execute(
                    text("SELECT count(*) FROM processed_event WHERE consumer = 'posts-groups'")
                ).scalar_one()
            return int(rows), int(processed)

        wait_for(lambda: counts() == (EVENTS, EVENTS), timeout=60)
        time.sleep(1.0)  # anything redelivered late would show up now
        assert counts() == (EVENTS, EVENTS)
        per_replica = [processed_by(port) for port in ports]
        assert sum(per_replica) == EVENTS, per_replica
        assert all(count > 0 for count in per_replica), (
            f"one replica did all the work: {per_replica}"
        )
        engine.dispose()
    finally:
        for replica in replicas:
            replica.terminate()
        for replica in replicas:
            replica.wait(timeout=20)
