"""SQLite reads skip the thread hops: an async endpoint's reads run on the event loop, and a
request that only read ends its session there; PostgreSQL's statements stay in threads."""

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlmodel import Session, text

from shared import db
from shared.testing.backends import fresh_database


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """The store the tests run on: SQLite, or PostgreSQL when one is configured."""
    with fresh_database(tmp_path, "reads") as url:
        engine = db.make_engine(url)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE item (n INTEGER)"))
        yield engine
        engine.dispose()


def app_on(engine: Engine, seen: dict[str, Any]) -> FastAPI:
    """Endpoints that record the thread each step ran in."""
    app = FastAPI()
    app.state.engine = engine

    def count(session: Session) -> int:
        seen["read"] = threading.get_ident()
        return int(session.exec(text("SELECT count(*) FROM item")).one()[0])  # type: ignore[call-overload]

    def insert(session: Session) -> int:
        session.exec(text("INSERT INTO item VALUES (1)"))  # type: ignore[call-overload]
        return 1

    @app.get("/count")
    async def read_count(session: db.SessionDep) -> int:
        seen["loop"] = threading.get_ident()
        return await db.read_from_store(session, count, session)

    @app.post("/items")
    def add_item(session: db.SessionDep) -> int:
        return insert(session)

    @app.post("/sneaky")
    async def write_as_a_read(session: db.SessionDep) -> int:
        return await db.read_from_store(session, insert, session)

    @event.listens_for(engine, "commit")
    def _ended(_connection: Any) -> None:
        seen.setdefault("commits", []).append(threading.get_ident())

    return app


def test_a_read_runs_on_the_event_loop_on_sqlite_and_in_a_thread_elsewhere(
    engine: Engine,
) -> None:
    seen: dict[str, Any] = {}
    with TestClient(app_on(engine, seen)) as client:
        assert client.post("/items").status_code == 200
        seen.clear()
        answer = client.get("/count")
    assert answer.status_code == 200
    assert answer.json() == 1
    on_sqlite = engine.dialect.name == "sqlite"
    assert (seen["read"] == seen["loop"]) is on_sqlite
    # The read-only session ended (committed nothing) where it ran.
    assert seen["commits"]
    assert all((ended == seen["loop"]) is on_sqlite for ended in seen["commits"])


def test_a_writing_request_commits_in_a_worker_thread(engine: Engine) -> None:
    seen: dict[str, Any] = {}
    with TestClient(app_on(engine, seen)) as client:
        client.get("/count")
        loop = seen["loop"]
        seen.clear()
        assert client.post("/items").status_code == 200
        assert client.get("/count").json() == 1
    assert seen["commits"][0] != loop


def test_a_write_passed_off_as_a_read_is_refused_and_rolled_back(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'sneaky.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE item (n INTEGER)"))
    with TestClient(app_on(engine, {}), raise_server_exceptions=False) as client:
        assert client.post("/sneaky").status_code == 500
        assert client.get("/count").json() == 0
        # The write lock was given back: the next writer gets in at once.
        assert client.post("/items").status_code == 200
        assert client.get("/count").json() == 1
