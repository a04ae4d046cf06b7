"""Optimistic concurrency (RFC 9110 §8.8.3, §13.1.1): ETag on reads, If-Match on changes.

An ETag names the version of an item a client read. A PATCH or DELETE that sends it in
`If-Match` applies only if the item is still at that version, else 412: nobody
overwrites an edit they never saw. `If-Match: *`, or no If-Match, changes
unconditionally, as before. ETags are strong and opaque; a weak one never matches.

The check is made on the row read in the request, and the write is guarded again by
the database (the row's version column is the mapper's version_id_col, see
`versioned`): a change that lands between check and write fails the flush
(StaleDataError), which `flush_versioned` turns into a 409.
"""

import hashlib
import json
from typing import Annotated, Any

from fastapi import Header
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session

from shared.errors import Conflict, PreconditionFailed

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="Apply only if the item's ETag is still one of these (or `*`); else 412.",
    ),
]

ETAG_HEADER: dict[str, Any] = {
    "ETag": {
        "description": "The version of the item; send it back in If-Match to change it safely.",
        "schema": {"type": "string"},
    }
}
Responses = dict[int | str, dict[str, Any]]
WITH_ETAG: Responses = {200: {"description": "Successful Response", "headers": ETAG_HEADER}}
PRECONDITION_FAILED: Responses = {
    412: {"description": "If-Match names a version that is no longer current; read it again"}
}


def etag(*parts: object) -> str:
    """A strong ETag for one state of an item: a digest of what identifies that state."""
    digest = hashlib.sha256(json.dumps([str(part) for part in parts]).encode()).hexdigest()
    return f'"{digest[:32]}"'


def check_if_match(if_match: str | None, current: str) -> None:
    """Raise PreconditionFailed unless If-Match is absent, `*`, or lists the current ETag."""
    if if_match is None:
        return
    candidates = {candidate.strip() for candidate in if_match.split(",")}
    # Strong comparison: `W/"…"` never equals a strong ETag.
    if "*" in candidates or current in candidates:
        return
    raise PreconditionFailed("the item changed since that ETag was read; read it again and retry")


def versioned(cls: Any) -> dict[str, Any]:
    """Mapper arguments that make the table's `version` column guard every UPDATE."""
    return {"version_id_col": cls.__table__.c.version, "version_id_generator": False}


def flush_versioned(session: Session) -> None:
    """Flush now, so a concurrent change to a versioned row is a 409 rather than a 500."""
    try:
        session.flush()
    except StaleDataError as exc:
        raise Conflict("the item changed concurrently; read it again and retry") from exc
