"""`GET /notifications/stream`: the person's notifications, live, as Server-Sent Events.

Starlette's StreamingResponse rather than sse-starlette: under uvicorn (ASGI 2.3) it
already ends the generator when the client disconnects, and the parts sse-starlette adds
do not fit here: its ping task cannot re-read the database at each heartbeat (ours must,
to catch a lost wake-up), it costs three more tasks per open stream, and it learns of
shutdown by patching uvicorn (the hub chains the exit signals instead). The wire format
is four lines (`live.sse_event`).
"""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from services.notifications.live import live_hub, notification_stream
from shared.auth import CurrentUser, TokenVerifier
from shared.errors import BadRequest
from shared.query import StrictQuery
from shared.settings import Settings

router = APIRouter(prefix="/notifications", tags=["notifications"])

EVENT_STREAM = "text/event-stream"
# One event of the stream (OpenAPI 3.1 puts the per-event schema under `schema`; 3.2
# calls it `itemSchema`): `data` is JSON text, an inbox item or `{"unread": n}`.
STREAM_EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["notification", "unread"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string", "description": "the notification's id (UUIDv7)"},
        "retry": {"type": "integer", "description": "reconnection delay in milliseconds"},
    },
}


def _resume_point(header: str | None, query: UUID | None) -> UUID | None:
    """The header wins: it is what the browser's EventSource sends on reconnecting."""
    if header is None or not header.strip():
        return query
    try:
        return UUID(header.strip())
    except ValueError:
        raise BadRequest("Last-Event-ID must be the id of an event this stream sent") from None


@router.get(
    "/stream",
    summary="Your notifications, live (Server-Sent Events)",
    description=(
        "`event: notification` (id = the notification's id, data = the inbox item) for "
        "each new notification you may see, `event: unread` with the unread count after "
        "changes, and a comment every heartbeat. Reconnect with `Last-Event-ID` (or "
        "`?last_event_id=`) to receive first what you missed."
    ),
    response_class=StreamingResponse,
    responses={
        200: {"content": {EVENT_STREAM: {"schema": STREAM_EVENT_SCHEMA}}},
        400: {"description": "`Last-Event-ID` is not the id of an event this stream sent"},
    },
    dependencies=[StrictQuery],
)
async def stream_notifications(
    request: Request,
    principal: CurrentUser,
    last_event_id: Annotated[
        UUID | None, Query(description="For EventSource polyfills that cannot set headers")
    ] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    resume = _resume_point(last_event_id_header, last_event_id)
    state = request.app.state
    settings: Settings = state.settings
    hub = await live_hub(state)
    verifier: TokenVerifier = state.verifier
    stream = notification_stream(
        hub=hub,
        engine=state.engine,
        user_id=principal.user_id,
        last_event_id=resume,
        heartbeat_seconds=settings.sse_heartbeat_seconds,
        revoked=lambda: verifier.revoked(principal),
    )
    headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(stream, media_type=EVENT_STREAM, headers=headers)
