"""SQLite writers of one process queue on a lock instead of in SQLite's busy handler."""

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, exc
from sqlmodel import text

from shared import db


def sqlite_engine(tmp_path: Path) -> Engine:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'writers.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE item (n INTEGER)"))
    return engine


def count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM item")).scalar_one())


def test_a_second_writer_waits_for_the_first_to_commit_not_for_sqlite(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path)
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            with engine.begin() as connection:
                # Without the lock, SQLite would refuse at once: the file is locked.
                connection.execute(text("PRAGMA busy_timeout=0"))
                connection.execute(text("INSERT INTO item VALUES (2)"))
        except BaseException as error:
            errors.append(error)

    with engine.begin() as connection:
        connection.execute(text("INSERT INTO item VALUES (1)"))
        writer = threading.Thread(target=second_writer)
        writer.start()
        time.sleep(0.2)  # ordering only: let the second writer reach its INSERT
    writer.join(timeout=10)
    assert not errors
    assert count(engine) == 2


def test_a_rolled_back_writer_lets_the_next_one_in(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path)
    with pytest.raises(RuntimeError), engine.begin() as connection:
        connection.execute(text("INSERT INTO item VALUES (1)"))
        raise RuntimeError("the request failed")
    with engine.begin() as connection:
        connection.execute(text("PRAGMA busy_timeout=0"))
        connection.execute(text("INSERT INTO item VALUES (2)"))
    assert count(engine) == 1


def test_a_writer_kept_waiting_past_the_busy_timeout_is_told_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sqlite_engine(tmp_path)
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 100)
    failures: list[BaseException] = []

    def second_writer() -> None:
        try:
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO item VALUES (2)"))
        except exc.OperationalError as error:
            failures.append(error)

    with engine.begin() as connection:
        connection.execute(text("INSERT INTO item VALUES (1)"))
        writer = threading.Thread(target=second_writer)
        writer.start()
        writer.join(timeout=10)
    assert len(failures) == 1
    assert db.is_database_unavailable(failures[0])  # a 503, as SQLite's own busy error
    assert count(engine) == 1
