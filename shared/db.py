"""Database engine and the request-owned session: commit on success, roll back on error.

Errors from the database mean one of three things to a client (see `shared.web`):
a unique constraint or a concurrent write decided a race (409, mapped once in
`get_session`), the database cannot be reached or is stalled (503,
`is_database_unavailable`), or a bug (500).
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from psycopg.abc import PQGen
from sqlalchemy import Connection, Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.schema import Table
from sqlmodel import Session, SQLModel, create_engine, text

from shared.errors import Conflict

# How long a request may wait for the database before it answers 503. PostgreSQL:
# to connect, for a pooled connection, and per statement (a stalled server or a lock
# held too long). SQLite: for the single writer's lock; writers queue on it, and a
# write transaction here lasts milliseconds, so 5 s is hundreds of queued writers.
CONNECT_TIMEOUT_SECONDS = 3
POOL_TIMEOUT_SECONDS = 5
STATEMENT_TIMEOUT_MS = 5_000
SQLITE_BUSY_TIMEOUT_MS = 5_000
# A server that stops answering altogether (frozen, or a network that drops packets
# silently) never enforces its statement timeout: the client gives up a little later.
CLIENT_DEADLINE_SECONDS = STATEMENT_TIMEOUT_MS / 1000 + 2

# SQLite's OperationalError also means "no such table" or a syntax error (SQLITE_ERROR):
# those are bugs. These extended names mean the file is busy or cannot be used.
_SQLITE_UNAVAILABLE = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CANTOPEN",
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_PROTOCOL",
)
_SQLITE_UNIQUE = ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")
_POSTGRES_UNIQUE_VIOLATION = "23505"


class _DeadlineConnection(psycopg.Connection[Any]):
    """A psycopg connection that waits on the server for at most CLIENT_DEADLINE_SECONDS."""

    deadline_seconds: float | None = CLIENT_DEADLINE_SECONDS

    def wait(self, gen: PQGen[Any], interval: float = 0.1, timeout: float | None = None) -> Any:
        deadline = self.deadline_seconds if timeout is None else timeout
        try:
            return super().wait(gen, interval=interval, timeout=deadline)
        except psycopg.errors._WaitTimeout:  # private, but psycopg's only deadline hook
            if timeout is not None:
                raise
            # Half a protocol exchange is left on the socket: the connection is unusable,
            # and closing it makes SQLAlchemy drop it from the pool (a disconnect).
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the database did not answer within {deadline:g} s"
            ) from None


def make_engine(url: str) -> Engine:
    """An engine for any SQLAlchemy URL, with bounded waits; SQLite gets WAL.

    Parameters are hidden from SQL errors: a failed INSERT would otherwise put an
    e-mail and a password hash into the log.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        options = parsed.query.get("options", "")
        options = options if isinstance(options, str) else " ".join(options)
        if "statement_timeout" not in options:
            options = f"{options} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip()
        engine = create_engine(
            parsed.update_query_dict({"options": options}),
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=10,
            pool_timeout=POOL_TIMEOUT_SECONDS,
            hide_parameters=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        )
        if parsed.get_driver_name() == "psycopg":

            @event.listens_for(engine, "do_connect")
            def _connect_with_deadline(
                _dialect: Any, _record: Any, cargs: Any, cparams: Any
            ) -> _DeadlineConnection:
                return _DeadlineConnection.connect(*cargs, **cparams)

        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        hide_parameters=True,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the single writer; NORMAL is durable in WAL mode.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    return engine


@contextmanager
def without_time_bounds(connection: Connection) -> Iterator[None]:
    """Lift the statement bounds for this transaction: migrations, and waiting for
    another replica's migration, may take longer than any request should."""
    if connection.dialect.name != "postgresql":
        yield
        return
    connection.execute(text("SET LOCAL statement_timeout = 0"))
    dbapi_connection = connection.connection.dbapi_connection
    if not isinstance(dbapi_connection, _DeadlineConnection):
        yield
        return
    dbapi_connection.deadline_seconds = None
    try:
        yield
    finally:
        dbapi_connection.deadline_seconds = CLIENT_DEADLINE_SECONDS


def create_tables(engine: Engine, tables: Sequence[type[SQLModel]]) -> None:
    """Create this service's tables only (the metadata may know other processes' tables)."""
    table_objects: list[Table] = [model.__table__ for model in tables]  # type: ignore[attr-defined]
    SQLModel.metadata.create_all(engine, tables=table_objects)


def is_unique_violation(exc: BaseException) -> bool:
    """A unique or primary-key constraint refused a row (another writer got there first)."""
    if not isinstance(exc, sa_exc.IntegrityError):
        return False
    orig = exc.orig
    return (
        getattr(orig, "sqlstate", None) == _POSTGRES_UNIQUE_VIOLATION
        or getattr(orig, "sqlite_errorname", None) in _SQLITE_UNIQUE
    )


def is_write_conflict(exc: BaseException) -> bool:
    """Another transaction changed what this one read: retrying the request may succeed."""
    if not isinstance(exc, sa_exc.OperationalError):
        return False
    orig = exc.orig
    # PostgreSQL class 40: serialization failure, deadlock. SQLite: a read snapshot
    # that another writer made stale before this transaction could write.
    return str(getattr(orig, "sqlstate", "") or "").startswith("40") or (
        getattr(orig, "sqlite_errorname", None) == "SQLITE_BUSY_SNAPSHOT"
    )


def is_database_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached, is stalled or busy: a retry later may succeed."""
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if not isinstance(exc, sa_exc.DBAPIError) or is_write_conflict(exc):
        return False
    if exc.connection_invalidated or isinstance(exc, sa_exc.InterfaceError):
        return True
    if not isinstance(exc, sa_exc.OperationalError):
        return False
    name = getattr(exc.orig, "sqlite_errorname", None)
    # PostgreSQL's OperationalError: refused, reset, shut down, statement timeout.
    return name is None or name.startswith(_SQLITE_UNAVAILABLE)


def check_database(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def get_session(request: Request) -> Iterator[Session]:
    """The request owns the transaction: services add and flush, this commits."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        # shared.idempotency adds the stored answer to this same transaction.
        request.state.db_session = session
        try:
            yield session
            session.commit()
        except BaseException as exc:
            session.rollback()
            # Check-then-insert races: the constraint decides, once, for every route.
            if is_unique_violation(exc):
                raise Conflict("this conflicts with an item that already exists") from exc
            if is_write_conflict(exc):
                raise Conflict("the item changed concurrently; retry") from exc
            raise


# Requests holding a session at once. Below the pool size (15 on SQLite, 20 on
# PostgreSQL): a request waiting for a slot holds no thread, so requests that already
# hold a connection always find a thread to finish on (no pool/threadpool deadlock).
MAX_CONCURRENT_SESSIONS = 12

SessionDep = Annotated[
    Session, Depends(get_session, scope="function", max_concurrency=MAX_CONCURRENT_SESSIONS)
]
