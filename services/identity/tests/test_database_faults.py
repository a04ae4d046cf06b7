"""A database that cannot be reached, is stalled or locked: 503 with Retry-After, never 500."""

import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from services.identity.main import create_app
from services.identity.tests.test_routes import bearer, register
from shared.db import (
    CLIENT_DEADLINE_SECONDS,
    STATEMENT_TIMEOUT_MS,
    is_database_unavailable,
    make_engine,
    without_time_bounds,
)
from shared.settings import Settings
from shared.testing.backends import fresh_database, postgres_url
from shared.testing.tcp_proxy import TcpProxy, tcp_proxy

# A regression (no bound on a stalled database) must fail the test, not hang it.
PATIENCE_SECONDS = 30


@contextmanager
def identity_on(database_url: str, tmp_path: Path, nats_url: str) -> Iterator[TestClient]:
    settings = Settings(
        service_name="identity",
        database_url=database_url,
        nats_url=nats_url,
        jwt_private_key_file=tmp_path / "jwt.pem",
        log_json=False,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def within_patience(send: Callable[[], httpx.Response]) -> httpx.Response:
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(send).result(timeout=PATIENCE_SECONDS)
    finally:
        pool.shutdown(wait=False)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["status"] == 503 and body["request_id"] == response.headers["x-request-id"]


@pytest.fixture
def postgres_behind_proxy(tmp_path: Path) -> Iterator[tuple[str, TcpProxy]]:
    """A fresh schema of the test PostgreSQL, reached through a proxy the test controls."""
    base = postgres_url()
    if base is None:
        # Not a missing server: the embedded stack runs without PostgreSQL on purpose, and
        # CI's production-stack pass sets the URL and runs these.
        pytest.skip("PostgreSQL stack not selected: set KNOWFLOW_TEST_POSTGRES_URL to run")
    target = make_url(base)
    with (
        fresh_database(tmp_path, "identity") as url,
        tcp_proxy(target.host or "127.0.0.1", target.port or 5432) as proxy,
    ):
        proxied = make_url(url).set(host="127.0.0.1", port=proxy.port)
        yield proxied.render_as_string(hide_password=False), proxy


def test_postgres_cut_off_is_503_with_retry_after_and_recovers_by_itself(
    postgres_behind_proxy: tuple[str, TcpProxy], tmp_path: Path, nats_url: str
) -> None:
    url, proxy = postgres_behind_proxy
    with identity_on(url, tmp_path, nats_url) as client:
        ada = register(client, "ada")
        proxy.set_mode("refuse")
        assert_unavailable(within_patience(lambda: client.get("/users/me", headers=bearer(ada))))
        assert_unavailable(
            within_patience(
                lambda: client.post(
                    "/auth/register",
                    json={
                        "handle": "bob",
                        "email": "bob@example.org",
                        "password": "correct horse",
                        "display_name": "Bob",
                    },
                )
            )
        )
        proxy.set_mode("pass")
        assert client.get("/users/me", headers=bearer(ada)).status_code == 200
        assert register(client, "bob")["user"]["handle"] == "bob"


def test_a_stalled_postgres_is_503_within_seconds_not_a_hang(
    postgres_behind_proxy: tuple[str, TcpProxy], tmp_path: Path, nats_url: str
) -> None:
    url, proxy = postgres_behind_proxy
    with identity_on(url, tmp_path, nats_url) as client:
        ada = register(client, "ada")
        proxy.set_mode("stall")
        # The pooled connection stalls mid-statement; the next request needs a new one,
        # whose connect stalls too.
        assert_unavailable(within_patience(lambda: client.get("/users/me", headers=bearer(ada))))
        assert_unavailable(within_patience(lambda: client.get("/users/me", headers=bearer(ada))))
        proxy.set_mode("pass")
        assert client.get("/users/me", headers=bearer(ada)).status_code == 200


def test_a_locked_sqlite_database_is_503_with_retry_after(tmp_path: Path, nats_url: str) -> None:
    path = tmp_path / "identity.db"
    with identity_on(f"sqlite:///{path}", tmp_path, nats_url) as client:
        ada = register(client, "ada")
        locker = sqlite3.connect(path, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            response = within_patience(
                lambda: client.patch("/users/me", headers=bearer(ada), json={"bio": "hello"})
            )
            assert_unavailable(response)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        again = client.patch("/users/me", headers=bearer(ada), json={"bio": "hello"})
        assert again.status_code == 200 and again.json()["bio"] == "hello"


def test_a_slow_statement_is_cut_at_the_bound_except_in_migrations(tmp_path: Path) -> None:
    if postgres_url() is None:
        pytest.skip("no PostgreSQL: set KNOWFLOW_TEST_POSTGRES_URL (deploy/postgres/run.sh url)")
    slow = text(f"SELECT pg_sleep({STATEMENT_TIMEOUT_MS / 1000 + 1})")
    with fresh_database(tmp_path, "slow") as url:
        engine = make_engine(url)
        try:
            with pytest.raises(OperationalError) as cut, engine.connect() as connection:
                connection.execute(slow)
            assert is_database_unavailable(cut.value)
            with engine.begin() as connection, without_time_bounds(connection):
                # Longer than the client's own deadline too.
                connection.execute(text(f"SELECT pg_sleep({CLIENT_DEADLINE_SECONDS + 1})"))
            with pytest.raises(OperationalError), engine.connect() as connection:
                connection.execute(slow)  # the bound is back for the next user
        finally:
            engine.dispose()
