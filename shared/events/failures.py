"""Why a handler failed: its dependency was unavailable (transient) or it rejected the data.

A transient failure says nothing about the message: the database, OpenSearch or another
service could not be reached or was overloaded, and the same message will succeed once
it is back. Such a message is kept and the consumer waits; only the other failures count
towards parking the message as poison.

    transient                                      not transient (the data is at fault)
    ├── DependencyUnavailable (raised/returned     ├── PoisonMessage, pydantic ValidationError
    │   by a handler that knows, e.g. a bulk item  ├── IntegrityError and other DBAPI errors
    │   answered 429 or 5xx)                       ├── OpenSearch 4xx other than 429
    ├── shared.errors.Unavailable (503)            └── anything else
    ├── OSError: refused, reset, timeouts
    ├── the database unavailable or a write conflict, as shared.db defines them
    │   (refused, reset, stalled, busy, pool timeout; a serialization failure)
    ├── OpenSearch ConnectionError / ConnectionTimeout, TransportError 429 / 5xx
    └── httpx transport errors, HTTP 429 / 5xx answers
"""

import httpx
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import TransportError as OpenSearchTransportError
from sqlalchemy import exc as sa

from shared.db import is_database_unavailable, is_write_conflict
from shared.errors import Unavailable


class DependencyUnavailable(Exception):
    """A dependency could not do its part now; the message is fine and will be retried."""


def unavailable_status(status: object) -> bool:
    """An HTTP status that says "not now" (429, 5xx), not "never"."""
    return isinstance(status, int) and (status == 429 or status >= 500)


def _transient_itself(exc: BaseException) -> bool:
    if isinstance(exc, DependencyUnavailable | Unavailable | OSError | TimeoutError):
        return True
    if isinstance(exc, sa.DisconnectionError):
        return True
    if is_database_unavailable(exc) or is_write_conflict(exc):
        return True
    if isinstance(exc, OpenSearchConnectionError):
        return True
    if isinstance(exc, OpenSearchTransportError):
        return unavailable_status(exc.status_code)
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return unavailable_status(exc.response.status_code)
    return False


def is_transient(exc: BaseException) -> bool:
    """True when `exc`, or an error it was raised from, means a dependency is unavailable."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _transient_itself(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
