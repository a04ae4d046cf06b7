"""A PostgreSQL server that stops answering altogether cannot enforce its own statement
timeout: the client gives up after CLIENT_DEADLINE_SECONDS and the pool drops the link."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import exc
from sqlalchemy.engine import make_url
from sqlmodel import text

from shared.db import CLIENT_DEADLINE_SECONDS, is_database_unavailable, make_engine
from shared.testing.backends import fresh_database, postgres_url
from shared.testing.tcp_proxy import TcpProxy, tcp_proxy


@contextmanager
def through_proxy(url: str) -> Iterator[tuple[str, TcpProxy]]:
    parsed = make_url(url)
    with tcp_proxy(parsed.host or "127.0.0.1", parsed.port or 5432) as proxy:
        yield parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(False), proxy


@pytest.mark.timeout(60)  # without the deadline the statement waits forever
def test_a_server_that_stops_answering_is_given_up_on_after_the_client_deadline(
    tmp_path: Path,
) -> None:
    if postgres_url() is None:
        pytest.skip("no PostgreSQL: set KNOWFLOW_TEST_POSTGRES_URL (deploy/postgres/run.sh url)")
    with fresh_database(tmp_path, "frozen") as url, through_proxy(url) as (proxied, proxy):
        engine = make_engine(proxied)
        try:
            with pytest.raises(exc.OperationalError) as cut, engine.connect() as connection:
                connection.execute(text("SELECT 1"))
                proxy.set_mode("stall")
                started = time.monotonic()
                connection.execute(text("SELECT 1"))
            waited = time.monotonic() - started
            assert is_database_unavailable(cut.value)
            assert "did not answer within" in str(cut.value)
            assert CLIENT_DEADLINE_SECONDS - 1 <= waited < CLIENT_DEADLINE_SECONDS + 5
        finally:
            engine.dispose()
