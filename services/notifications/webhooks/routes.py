"""Webhook endpoints for admins: parse, call the service, return."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, status

from services.notifications.webhooks import service
from services.notifications.webhooks.grants import type_audiences
from services.notifications.webhooks.models import DeliveryStatus, WebhookDelivery
from services.notifications.webhooks.schemas import (
    DeliveryPublic,
    EndpointCreate,
    EndpointCreated,
    EndpointPublic,
    EndpointUpdate,
    EventTypePublic,
    ReplayQueued,
    ReplayRequest,
    SecretRotated,
)
from shared.auth import CurrentUser, Principal
from shared.db import SessionDep
from shared.errors import Forbidden
from shared.events.contracts import EVENT_TYPES
from shared.idempotency import IdempotentRoute
from shared.pagination import CursorParam, Page, PageSize
from shared.query import StrictQuery
from shared.settings import Settings

router = APIRouter(prefix="/webhooks", tags=["webhooks"], route_class=IdempotentRoute)

ADMIN_ONLY: dict[int | str, dict[str, Any]] = {403: {"description": "Not an admin"}}
WITH_ID: dict[int | str, dict[str, Any]] = {**ADMIN_ONLY, 404: {"description": "Unknown endpoint"}}
BAD_SUBSCRIPTION: dict[int | str, dict[str, Any]] = {
    400: {"description": "Unknown event type, or one never of that audience; refused URL"}
}


def require_admin(principal: CurrentUser) -> Principal:
    if not principal.is_admin:
        raise Forbidden("only admins manage webhooks")
    return principal


Admin = Annotated[Principal, Depends(require_admin)]


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(settings_of)]


def delivery_public(delivery: WebhookDelivery) -> DeliveryPublic:
    waiting = delivery.status == "pending"
    return DeliveryPublic.model_validate(
        {**delivery.model_dump(), "next_attempt_at": delivery.next_attempt_at if waiting else None}
    )


@router.get("/event-types", responses=ADMIN_ONLY)
def list_event_types(_admin: Admin) -> list[EventTypePublic]:
    """What an endpoint can subscribe to: `public` types in `event_types`, `restricted`
    ones in `restricted_event_types`; `public_or_restricted` types go in either list."""
    return [
        EventTypePublic(
            type=name,
            audience=audience,
            description=(EVENT_TYPES[name].__doc__ or "").strip().split("\n")[0],
        )
        for name, audience in type_audiences().items()
    ]


@router.post(
    "/endpoints",
    status_code=status.HTTP_201_CREATED,
    responses={**ADMIN_ONLY, **BAD_SUBSCRIPTION},
)
def create_endpoint(
    body: EndpointCreate, _admin: Admin, session: SessionDep, settings: SettingsDep
) -> EndpointCreated:
    """Register an endpoint; the answer carries its signing secret, shown only this once."""
    endpoint, secret = service.do_create_endpoint(session=session, request=body, settings=settings)
    return EndpointCreated(**service.endpoint_public(endpoint).model_dump(), secret=secret)


@router.get("/endpoints", responses=ADMIN_ONLY, dependencies=[StrictQuery])
def list_endpoints(
    _admin: Admin, session: SessionDep, cursor: CursorParam = None, limit: PageSize = 20
) -> Page[EndpointPublic]:
    rows, next_cursor = service.list_endpoints(session=session, cursor=cursor, limit=limit)
    return Page(items=[service.endpoint_public(row) for row in rows], next_cursor=next_cursor)


@router.get("/endpoints/{endpoint_id}", responses=WITH_ID)
def read_endpoint(endpoint_id: UUID, _admin: Admin, session: SessionDep) -> EndpointPublic:
    return service.endpoint_public(service.check_endpoint(session=session, endpoint_id=endpoint_id))


@router.patch("/endpoints/{endpoint_id}", responses={**WITH_ID, **BAD_SUBSCRIPTION})
def update_endpoint(
    endpoint_id: UUID,
    body: EndpointUpdate,
    _admin: Admin,
    session: SessionDep,
    settings: SettingsDep,
) -> EndpointPublic:
    """Change the URL, types or grants; `{"enabled": true}` re-enables a disabled one."""
    endpoint = service.check_endpoint(session=session, endpoint_id=endpoint_id)
    updated = service.do_update_endpoint(
        session=session, endpoint=endpoint, request=body, settings=settings
    )
    return service.endpoint_public(updated)


@router.delete(
    "/endpoints/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT, responses=WITH_ID
)
def delete_endpoint(endpoint_id: UUID, _admin: Admin, session: SessionDep) -> None:
    endpoint = service.check_endpoint(session=session, endpoint_id=endpoint_id)
    service.do_delete_endpoint(session=session, endpoint=endpoint)


@router.post("/endpoints/{endpoint_id}/rotate-secret", responses=WITH_ID)
def rotate_secret(
    endpoint_id: UUID, _admin: Admin, session: SessionDep, settings: SettingsDep
) -> SecretRotated:
    """A new signing secret, shown only now; attempts from now on are signed with it."""
    endpoint = service.check_endpoint(session=session, endpoint_id=endpoint_id)
    secret = service.do_rotate_secret(session=session, endpoint=endpoint, settings=settings)
    return SecretRotated(id=endpoint.id, secret=secret)


@router.get("/endpoints/{endpoint_id}/deliveries", responses=WITH_ID, dependencies=[StrictQuery])
def list_deliveries(
    endpoint_id: UUID,
    _admin: Admin,
    session: SessionDep,
    status: Annotated[DeliveryStatus | None, Query(description="Only this status.")] = None,
    cursor: CursorParam = None,
    limit: PageSize = 20,
) -> Page[DeliveryPublic]:
    """The delivery log, newest first: attempts, last answer or error, times."""
    endpoint = service.check_endpoint(session=session, endpoint_id=endpoint_id)
    rows, next_cursor = service.list_deliveries(
        session=session, endpoint=endpoint, status=status, cursor=cursor, limit=limit
    )
    return Page(items=[delivery_public(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "/endpoints/{endpoint_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **WITH_ID,
        400: {"description": "`since` in the future"},
        409: {"description": "The endpoint is disabled"},
    },
)
def replay(
    endpoint_id: UUID, body: ReplayRequest, _admin: Admin, session: SessionDep
) -> ReplayQueued:
    """Deliver again every kept event since `since` that the endpoint's grant covers."""
    endpoint = service.check_endpoint(session=session, endpoint_id=endpoint_id)
    return ReplayQueued(
        queued=service.do_replay(session=session, endpoint=endpoint, since=body.since)
    )
