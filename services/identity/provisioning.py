"""Provisioning clients: the bearer tokens SCIM callers use, created and revoked by admins.

A client token is random (`kfscim_` and 32 bytes), shown once, stored as its SHA-256. It is
never a user token: /scim/v2 refuses user JWTs, and user endpoints refuse client tokens.
"""

import hashlib
import secrets
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, Field
from scim2_models import UnauthorizedException
from sqlmodel import Session, col, select

from services.identity.audit import Origin, record_audit
from services.identity.models import ScimClient
from shared.auth import CurrentUser
from shared.db import SessionDep
from shared.errors import Forbidden, NotFound
from shared.idempotency import IdempotentRoute
from shared.ids import utcnow
from shared.pagination import (
    LIST_ERRORS,
    CursorParam,
    Page,
    PageSize,
    cursor_id,
    decode_cursor,
    paginate,
)
from shared.query import StrictQuery

TOKEN_PREFIX = "kfscim_"

router = APIRouter(tags=["scim-clients"], route_class=IdempotentRoute)


class ScimClientCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class ScimClientPublic(BaseModel):
    id: UUID
    name: str
    created_by: UUID
    created_at: datetime
    revoked_at: datetime | None


class ScimClientCreated(ScimClientPublic):
    # Shown once: only its hash is stored.
    token: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_client(*, session: Session, authorization: str | None) -> ScimClient:
    """The active provisioning client whose token the request carries, or SCIM 401."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX):
        raise UnauthorizedException(detail="a provisioning client's bearer token is required")
    client = session.exec(
        select(ScimClient).where(ScimClient.token_hash == token_hash(token))
    ).first()
    if client is None or client.revoked_at is not None:
        raise UnauthorizedException(detail="unknown or revoked provisioning token")
    return client


def get_client(request: Request, session: SessionDep) -> ScimClient:
    return check_client(session=session, authorization=request.headers.get("authorization"))


ProvisioningClient = Annotated[ScimClient, Depends(get_client)]


def _public(client: ScimClient) -> ScimClientPublic:
    return ScimClientPublic.model_validate(client, from_attributes=True)


@router.post(
    "/scim-clients",
    status_code=status.HTTP_201_CREATED,
    responses={403: {"description": "Only an admin creates provisioning clients"}},
)
def create_scim_client(
    request: Request, principal: CurrentUser, body: ScimClientCreate, session: SessionDep
) -> ScimClientCreated:
    """Create a provisioning client (admin); its token is in this answer and nowhere else."""
    if not principal.is_admin:
        raise Forbidden("only an admin creates provisioning clients")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    client = ScimClient(name=body.name, token_hash=token_hash(token), created_by=principal.user_id)
    session.add(client)
    session.flush()
    record_audit(
        session,
        action="scim_client.created",
        target=f"scim_client:{client.id}",
        actor_id=principal.user_id,
        origin=Origin.of(request),
        details={"name": client.name},
    )
    return ScimClientCreated(**_public(client).model_dump(), token=token)


@router.get(
    "/scim-clients",
    dependencies=[StrictQuery],
    responses={**LIST_ERRORS, 403: {"description": "Only an admin lists them"}},
)
def list_scim_clients(
    principal: CurrentUser, session: SessionDep, limit: PageSize = 20, cursor: CursorParam = None
) -> Page[ScimClientPublic]:
    """Provisioning clients, revoked ones too, oldest first (ids are UUIDv7)."""
    if not principal.is_admin:
        raise Forbidden("only an admin lists provisioning clients")
    statement = select(ScimClient)
    after = decode_cursor(cursor, 1)
    if after is not None:
        statement = statement.where(col(ScimClient.id) > cursor_id(after[0]))
    statement = statement.order_by(col(ScimClient.id))
    clients, next_cursor = paginate(
        session, statement, limit=limit, cursor_of=lambda row: [str(row.id)]
    )
    return Page[ScimClientPublic](
        items=[_public(client) for client in clients], next_cursor=next_cursor
    )


@router.delete(
    "/scim-clients/{client_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        403: {"description": "Only an admin revokes them"},
        404: {"description": "No such client"},
    },
)
def revoke_scim_client(
    request: Request, client_id: UUID, principal: CurrentUser, session: SessionDep
) -> None:
    """Revoke a client's token at once (the row stays, for the audit trail)."""
    if not principal.is_admin:
        raise Forbidden("only an admin revokes provisioning clients")
    client = session.get(ScimClient, client_id)
    if client is None:
        raise NotFound(f"no provisioning client {client_id}")
    if client.revoked_at is None:
        client.revoked_at = utcnow()
        session.add(client)
        record_audit(
            session,
            action="scim_client.revoked",
            target=f"scim_client:{client.id}",
            actor_id=principal.user_id,
            origin=Origin.of(request),
        )
