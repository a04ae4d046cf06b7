"""A login flood cannot run more than a few argon2 hashes at once (each holds 64 MiB)."""

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from services.identity.tests.test_routes import identity_app, register
from shared.testing.fixtures import ServiceClientFactory


class Running:
    """How many argon2 verifications run at the same time (the real argon2 underneath)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0


@pytest.fixture
def running(monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    counter = Running()
    real_verify = PasswordHasher.verify

    def counted(self: PasswordHasher, hash: Any, password: Any) -> bool:
        with counter.lock:
            counter.now += 1
            counter.most = max(counter.most, counter.now)
        try:
            return real_verify(self, hash, password)
        finally:
            with counter.lock:
                counter.now -= 1

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    yield counter


def flood_logins(client: TestClient, count: int) -> list[httpx.Response]:
    body = {"login": "ann", "password": "correct horse"}
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: client.post("/auth/login", json=body), range(count)))


def test_sixteen_concurrent_logins_all_succeed_with_at_most_two_hashes_at_once(
    service_client: ServiceClientFactory, running: Running
) -> None:
    with service_client(
        identity_app,
        name="identity",
        password_hash_concurrency=2,
        password_hash_wait_seconds=120.0,  # a busy test machine must not turn this into 503s
    ) as client:
        register(client, "ann")
        responses = flood_logins(client, 16)
    assert [response.status_code for response in responses] == [200] * 16
    assert running.most <= 2


def test_logins_beyond_the_hashing_queue_are_503_with_retry_after(
    service_client: ServiceClientFactory, running: Running
) -> None:
    with service_client(
        identity_app, name="identity", password_hash_concurrency=1, password_hash_queue=1
    ) as client:
        register(client, "ann")
        responses = flood_logins(client, 12)
    statuses = [response.status_code for response in responses]
    assert set(statuses) == {200, 503}
    assert statuses.count(200) >= 2
    refused = next(response for response in responses if response.status_code == 503)
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "1"
    assert running.most == 1
