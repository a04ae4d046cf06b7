"""PostgreSQL's client-side deadline, imported only by engines on PostgreSQL: psycopg adds
9 MB to a process, and most processes run on SQLite."""

from typing import Any

import psycopg
from psycopg.abc import PQGen


class DeadlineConnection(psycopg.Connection[Any]):
    """A psycopg connection that waits on the server for at most `deadline_seconds`."""

    deadline_seconds: float | None = None

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
