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

import sys

import httpx
from sqlalchemy import exc as sa

from shared.db import is_database_unavailable, is_write_conflict
from shared.errors import Unavailable


class DependencyUnavailable(Exception):
    """A dependency could not do its part now; the message is fine and will be retried."""


def unavailable_status(status: object) -> bool:
    """An HTTP status that says "not now" (429, 5xx), not "never"."""
    return isinstance(status, int) and (status == 429 or status >= 500)


def _opensearch_transient(exc: BaseException) -> bool | None:
    """An OpenSearch client error's verdict, None for anything else.

    Looked up, not imported: only the search service talks to OpenSearch, and the client
    costs every other service 24 MB of memory. Where it was never imported, none of its
    errors can have been raised.
    """
    errors = sys.modules.get("opensearchpy.exceptions")
    if errors is None:
        return None
    if isinstance(exc, errors.ConnectionError):
        return True
    if isinstance(exc, errors.TransportError):
        return unavailable_status(exc.status_code)
    return None


def _transient_itself(exc: BaseException) -> bool:
    if isinstance(exc, DependencyUnavailable | Unavailable | OSError | TimeoutError):
        return True
    if isinstance(exc, sa.DisconnectionError):
        return True
    if is_database_unavailable(exc) or is_write_conflict(exc):
        return True
    verdict = _opensearch_transient(exc)
    if verdict is not None:
        return verdict
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
