"""Idempotency-Key on every POST: a retried request replays the first answer, never writes twice.

A POST that carries `Idempotency-Key` and succeeds stores its answer (status, body,
Content-Type/Location/ETag) in `idempotency_record`, in the SAME transaction as its
write: the request's session (shared.db.get_session) commits both or neither, so a
committed post always has its stored answer and a rolled-back one never does.

- The same key (per authenticated user, or per client address for anonymous calls)
  with the same request (method, path, query, body) replays the stored answer with
  `Idempotent-Replayed: true`; with another request it is 422.
- A duplicate sent while the first is still running waits for it: both write, and
  the unique (scope, key) row lets only one commit; the other rolls back its write
  and replays the winner's answer.
- Only 2xx answers are stored: an error wrote nothing, so a retry runs again.
- Records live for a day (`RETENTION`); the service's lifespan prunes older ones.
"""

import asyncio
import hashlib
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from sqlalchemy import Engine, LargeBinary, delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import JSON, Column, Field, Session, SQLModel, col

from shared.auth import TokenVerifier, bearer_token
from shared.errors import BadRequest, KnowflowError, Unauthorized
from shared.ids import utcnow
from shared.observability import client_address

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"  # visible ASCII, e.g. a UUID
RETENTION = timedelta(days=1)
PRUNE_INTERVAL_SECONDS = 600.0
# Headers of the first answer that a replay repeats (the body's meaning depends on them).
REPLAYED_HEADERS = ("content-type", "location", "etag")

RouteHandler = Callable[[Request], Coroutine[Any, Any, Response]]


class IdempotencyRecord(SQLModel, table=True):
    """The answer given to one (caller, key); kept for `RETENTION`."""

    __tablename__ = "idempotency_record"

    scope: str = Field(primary_key=True, max_length=80)  # "user:<id>" or "client:<address>"
    key: str = Field(primary_key=True, max_length=MAX_KEY_LENGTH)
    fingerprint: str = Field(max_length=64)  # sha256 of method, path, query and body
    status: int
    headers: list[list[str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)


def header_parameter(*, stored: bool = True) -> dict[str, Any]:
    """The OpenAPI description of the request header."""
    description = (
        "Makes a retry safe: the same key (per user, or per client when anonymous) with the "
        "same request replays the first successful answer for a day, with "
        "`Idempotent-Replayed: true`; the same key with a different request is 422. A duplicate "
        "sent while the first is running waits for it. Only successful answers are stored."
    )
    if not stored:
        description = (
            "Accepted and validated, but nothing is stored: this operation creates nothing, "
            "and its answer (a fresh token) must not be kept for replay."
        )
    return {
        "name": HEADER,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_KEY_LENGTH,
            "pattern": KEY_PATTERN,
        },
    }


def check_key(request: Request) -> str | None:
    """The request's key, or None; a malformed key is a 400."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(0x21 <= ord(ch) <= 0x7E for ch in key):
        raise BadRequest(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters")
    return key


def caller_scope(request: Request) -> str:
    """Whose keys these are: the verified user, else the client's address."""
    verifier: TokenVerifier = request.app.state.verifier
    if request.headers.get("authorization"):
        try:
            return f"user:{verifier.verify(bearer_token(request.headers['authorization'])).user_id}"
        except Unauthorized:
            pass  # the operation decides whether it needs a token
    return f"client:{client_address(request) or 'unknown'}"


def fingerprint_of(request: Request, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (request.method, request.url.path, request.url.query):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(body)
    return digest.hexdigest()


def load_record(engine: Engine, scope: str, key: str) -> IdempotencyRecord | None:
    """The live record for (scope, key), if any (an expired one counts as none)."""
    with Session(engine) as session:
        record = session.get(IdempotencyRecord, (scope, key))
    if record is None or record.created_at < utcnow() - RETENTION:
        return None
    return record


def replay(record: IdempotencyRecord, fingerprint: str) -> Response:
    if record.fingerprint != fingerprint:
        raise KeyReused
    headers = {name: value for name, value in record.headers}
    headers[REPLAYED_HEADER] = "true"
    return Response(content=record.body, status_code=record.status, headers=headers)


class KeyReused(KnowflowError):
    status = 422
    title = "Unprocessable Content"

    def __init__(self) -> None:
        super().__init__(f"this {HEADER} was already used with a different request")


def store(session: Session, record: IdempotencyRecord) -> None:
    """Add the record to the request's transaction (replacing an expired one) and flush."""
    session.execute(
        delete(IdempotencyRecord).where(
            col(IdempotencyRecord.scope) == record.scope,
            col(IdempotencyRecord.key) == record.key,
            col(IdempotencyRecord.created_at) < utcnow() - RETENTION,
        )
    )
    session.add(record)
    session.flush()


def idempotent(handler: RouteHandler, *, path: str) -> RouteHandler:
    """Wrap a route handler (it runs the endpoint; the session is committed after it)."""

    async def run(request: Request) -> Response:
        key = check_key(request)
        if key is None or path in request.app.state.spec.unstored_replies:
            return await handler(request)
        engine: Engine = request.app.state.engine
        body = await request.body()  # cached on the request: the endpoint reads the same bytes
        scope = await run_in_threadpool(caller_scope, request)
        fingerprint = fingerprint_of(request, body)
        existing = await run_in_threadpool(load_record, engine, scope, key)
        if existing is not None:
            return replay(existing, fingerprint)
        response = await handler(request)
        session: Session | None = getattr(request.state, "db_session", None)
        if session is None or not 200 <= response.status_code < 300:
            return response
        record = IdempotencyRecord(
            scope=scope,
            key=key,
            fingerprint=fingerprint,
            status=response.status_code,
            headers=[
                [name, response.headers[name]]
                for name in REPLAYED_HEADERS
                if name in response.headers
            ],
            body=bytes(response.body),
        )
        try:
            await run_in_threadpool(store, session, record)
        except IntegrityError:
            # A duplicate committed first: drop this request's write, answer as it did.
            await run_in_threadpool(session.rollback)
            winner = await run_in_threadpool(load_record, engine, scope, key)
            if winner is None:
                raise
            return replay(winner, fingerprint)
        return response

    return run


class IdempotentRoute(APIRoute):
    """The route class of every service router: its POSTs honour Idempotency-Key.

    `shared.web.create_service_app` refuses a POST route of any other class.
    """

    def get_route_handler(self) -> RouteHandler:
        handler = super().get_route_handler()
        if "POST" not in (self.methods or ()):
            return handler
        return idempotent(handler, path=self.path)


def document_idempotency(document: dict[str, Any], *, unstored: frozenset[str]) -> None:
    """Add the header, and the replay marker of the success answer, to every POST operation."""
    for path, item in document.get("paths", {}).items():
        operation = item.get("post")
        if operation is None:
            continue
        stored = path not in unstored
        operation.setdefault("parameters", []).append(header_parameter(stored=stored))
        if not stored:
            continue
        for status, response in operation.get("responses", {}).items():
            if str(status).startswith("2"):
                response.setdefault("headers", {})[REPLAYED_HEADER] = {
                    "description": "`true` when this is the stored answer to an earlier "
                    "request with the same Idempotency-Key",
                    "schema": {"type": "string", "enum": ["true"]},
                }


def prune(engine: Engine) -> int:
    """Delete records older than `RETENTION`; returns how many."""
    with Session(engine) as session:
        result = session.execute(
            delete(IdempotencyRecord).where(
                col(IdempotencyRecord.created_at) < utcnow() - RETENTION
            )
        )
        session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


async def prune_forever(engine: Engine, interval: float = PRUNE_INTERVAL_SECONDS) -> None:
    """The lifespan's pruning task."""
    while True:
        try:
            removed = await asyncio.to_thread(prune, engine)
            if removed:
                log.info("pruned %d idempotency records", removed)
        except Exception:
            log.warning("pruning idempotency records failed; retrying later", exc_info=True)
        await asyncio.sleep(interval)
