"""Database engine and the request-owned session: commit on success, roll back on error.

Errors from the database mean one of three things to a client (see `shared.web`):
a unique constraint or a concurrent write decided a race (409, mapped once in
`get_session`), the database cannot be reached or is stalled (503,
`is_database_unavailable`), or a bug (500).

Times: SQLModel maps every `datetime` field to its `UTCDateTime` column type
(DateTime(timezone=True)), which refuses a naive value on the way in (a time of
unknown zone is a bug, loud at flush) and reads back aware UTC on SQLite (which keeps
no offset) as on PostgreSQL (`shared/tests/test_datetimes.py`). Code that reads a row
never converts its times; `shared.ids.as_utc` is for times parsed from outside.
"""

import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import ColumnElement, Connection, Engine, event, false
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.schema import Table
from sqlmodel import Session, SQLModel, col, create_engine, text

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

# Requests holding a session at once. Below the pool size (15 on SQLite, 20 on
# PostgreSQL): a request waiting for a slot holds no thread, so requests that already
# hold a connection always find a thread to finish on (no pool/threadpool deadlock).
MAX_CONCURRENT_SESSIONS = 12

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
            # Imported here: psycopg adds 9 MB to every process, and most run on SQLite.
            from shared.postgres import DeadlineConnection

            @event.listens_for(engine, "do_connect")
            def _connect_with_deadline(
                _dialect: Any, _record: Any, cargs: Any, cparams: Any
            ) -> DeadlineConnection:
                connection = DeadlineConnection.connect(*cargs, **cparams)
                connection.deadline_seconds = CLIENT_DEADLINE_SECONDS
                return connection

        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        hide_parameters=True,
        # As many as the sessions in use at once and the relay, consumers and health
        # checks beside them, kept open: an overflow connection is closed when returned,
        # and reopening one (file, WAL, pragmas) cost every request under load.
        pool_size=MAX_CONCURRENT_SESSIONS + 3,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the single writer. Durability with synchronous=NORMAL:
        # a commit is in the WAL file (the OS's page cache) before it is acknowledged, so
        # an acknowledged write survives a crash or kill of the process. The WAL is fsynced
        # at each checkpoint, not at each commit: on power loss or an OS crash the
        # transactions committed since the last checkpoint (at most ~1,000 pages, usually
        # well under a second of writes) can be lost, never half-applied (the database stays
        # consistent). synchronous=FULL would fsync per commit (a few ms each on this disk,
        # once per transaction, serialised) for power-loss durability; we do not promise it
        # on SQLite, the single-host store. PostgreSQL is the store for that promise.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    _serialise_sqlite_writers(engine)
    return engine


_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def _serialise_sqlite_writers(engine: Engine) -> None:
    """Writers of this process queue on a lock, in order, instead of in SQLite's busy handler.

    SQLite has one writer at a time. A second writer that finds the file locked is put
    to sleep by the busy handler (1, 2, 5, ... up to 100 ms between tries) however soon
    the lock is free: under 64 concurrent POSTs most of a request's time was that sleep
    (p50 ~500 ms for a ~5 ms write). Here a transaction takes a process-wide lock before
    its first write and gives it back at commit or rollback, so the next writer starts
    the moment the last one is done. Readers are not held (WAL). Another process (a
    second worker, the admin tool) still meets SQLite's own lock and busy handler.
    """
    lock = threading.Lock()
    holder: dict[str, Any] = {"connection": None}

    @event.listens_for(engine, "before_cursor_execute")
    def _take(connection: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        dbapi_connection = connection.connection.dbapi_connection
        if holder["connection"] is dbapi_connection:
            return
        if not statement.lstrip()[:7].upper().startswith(_WRITE_VERBS):
            return
        # Bounded like SQLite's own wait, and answered the same way (503), so a write
        # never waits longer than SQLITE_BUSY_TIMEOUT_MS in all.
        if not lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            busy = sqlite3.OperationalError("database is locked")
            busy.sqlite_errorname = "SQLITE_BUSY"
            raise busy
        holder["connection"] = dbapi_connection

    def _give_back(connection: Any) -> None:
        # The dialect is handed the pool's proxy, the pool events the DBAPI connection.
        dbapi_connection = getattr(connection, "dbapi_connection", connection)
        if dbapi_connection is not None and holder["connection"] is dbapi_connection:
            holder["connection"] = None
            lock.release()

    # After the commit or rollback itself (the `commit` event fires before it): the next
    # writer must not find SQLite's lock still held. Pool resets roll back this way too.
    do_commit, do_rollback = engine.dialect.do_commit, engine.dialect.do_rollback

    def _commit(dbapi_connection: Any) -> None:
        try:
            do_commit(dbapi_connection)
        finally:
            _give_back(dbapi_connection)

    def _rollback(dbapi_connection: Any) -> None:
        try:
            do_rollback(dbapi_connection)
        finally:
            _give_back(dbapi_connection)

    engine.dialect.do_commit = _commit  # type: ignore[method-assign]
    engine.dialect.do_rollback = _rollback  # type: ignore[method-assign]

    # A connection returned to the pool, or closed, mid-transaction.
    @event.listens_for(engine.pool, "checkin")
    def _checkin(dbapi_connection: Any, _record: Any) -> None:
        _give_back(dbapi_connection)

    @event.listens_for(engine.pool, "close")
    def _close(dbapi_connection: Any, _record: Any) -> None:
        _give_back(dbapi_connection)


@contextmanager
def without_time_bounds(connection: Connection) -> Iterator[None]:
    """Lift the statement bounds for this transaction: migrations, and waiting for
    another replica's migration, may take longer than any request should."""
    if connection.dialect.name != "postgresql":
        yield
        return
    from shared.postgres import DeadlineConnection  # on PostgreSQL only, as in make_engine

    connection.execute(text("SET LOCAL statement_timeout = 0"))
    dbapi_connection = connection.connection.dbapi_connection
    if not isinstance(dbapi_connection, DeadlineConnection):
        yield
        return
    dbapi_connection.deadline_seconds = None
    try:
        yield
    finally:
        dbapi_connection.deadline_seconds = CLIENT_DEADLINE_SECONDS


# IN-lists are padded to these lengths (then to multiples of the last), so a statement's
# text depends on its list's length only by bucket.
_IN_LIST_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def in_list(column: Any, values: Collection[Any]) -> ColumnElement[bool]:
    """`column IN values`, whatever the list's length written as one of a few statements.

    A list of values expands to one placeholder each, so every new length is a new
    statement to prepare, and SQLite's driver keeps the last 128 prepared statements of
    each pooled connection: at 500 values one holds 87 KB, and a digest round's lists of
    every length grew the process by 37 MB. The list is padded with its last value (IN
    ignores the repeat) to the next bucket. An empty list matches nothing.
    """
    wanted = list(values)
    if not wanted:
        return false()
    length = next((size for size in _IN_LIST_BUCKETS if size >= len(wanted)), None)
    if length is None:
        step = _IN_LIST_BUCKETS[-1]
        length = -(-len(wanted) // step) * step
    return col(column).in_(wanted + [wanted[-1]] * (length - len(wanted)))


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


def _end_session(session: Session, *, commit: bool) -> None:
    """Commit (or roll back) the request's transaction and give its connection back."""
    with session:  # closes it
        if not commit:
            session.rollback()
            return
        try:
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _as_conflict(exc: BaseException) -> BaseException:
    """Check-then-insert races: the constraint decides, once, for every route."""
    if is_unique_violation(exc):
        return Conflict("this conflicts with an item that already exists")
    if is_write_conflict(exc):
        return Conflict("the item changed concurrently; retry")
    return exc


def _reads_on_the_loop(session: Session) -> bool:
    """Whether this session's reads may run on the event loop.

    SQLite answers a read from its file, in WAL mode without waiting for a writer, in
    tens of microseconds: less than handing the work to a thread and back (GET /users/me
    cost 1.0 ms of CPU with its two hops, 0.6 ms without; bench/ingest_bench.py). A
    PostgreSQL statement is a network round trip that may stall until its deadline: the
    event loop never waits for one.
    """
    return session.get_bind().dialect.name == "sqlite"


def _has_written(session: Session) -> bool:
    """Whether the session's transaction wrote, or will write when it commits."""
    if session.new or session.dirty or session.deleted:
        return True
    if not session.in_transaction():
        return False
    # The sqlite3 driver begins its transaction at the first INSERT/UPDATE/DELETE only.
    dbapi_connection = session.connection().connection.dbapi_connection
    return dbapi_connection is None or bool(getattr(dbapi_connection, "in_transaction", True))


Params = ParamSpec("Params")
Result = TypeVar("Result")


async def read_from_store(
    session: Session,
    read: Callable[Params, Result],
    /,
    *args: Params.args,
    **kwargs: Params.kwargs,
) -> Result:
    """Run `read`, which reads through `session`, for an async endpoint: on the event loop
    on SQLite, in a worker thread elsewhere (see `_reads_on_the_loop`).

    Reads only: a write on the loop would hold SQLite's write lock while the loop serves
    other requests, so one is refused (the request's transaction then rolls back).
    """
    if not _reads_on_the_loop(session):
        return await run_in_threadpool(read, *args, **kwargs)
    result = read(*args, **kwargs)
    if _has_written(session):
        raise RuntimeError(f"{read.__qualname__} wrote: writes run in a worker thread")
    return result


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request owns the transaction: services add and flush, this commits.

    Async, so opening the session costs no thread hop (a Session touches the database
    only when first used, in the endpoint's thread). Ending it is one hop, or none on
    SQLite when the request only read (there is nothing to commit).
    """
    session = Session(request.app.state.engine, expire_on_commit=False)
    # shared.idempotency adds the stored answer to this same transaction.
    request.state.db_session = session
    try:
        yield session
    except BaseException as exc:
        await run_in_threadpool(_end_session, session, commit=False)
        if (mapped := _as_conflict(exc)) is not exc:
            raise mapped from exc
        raise
    try:
        if _reads_on_the_loop(session) and not _has_written(session):
            _end_session(session, commit=True)
        else:
            await run_in_threadpool(_end_session, session, commit=True)
    except Exception as exc:
        if (mapped := _as_conflict(exc)) is not exc:
            raise mapped from exc
        raise


SessionDep = Annotated[
    Session, Depends(get_session, scope="function", max_concurrency=MAX_CONCURRENT_SESSIONS)
]
