"""The inbox: notifications, marked read one by one or all at once, and live updates.

The browser's EventSource cannot send a bearer token, so `/inbox/live` relays the API's
stream (`GET /api/v1/notifications/stream`) as the signed-in person, event for event.
"""

from collections.abc import AsyncIterator
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse

from services.web.api import API_PREFIX
from services.web.pages.base import PageDep, redirect, safe_next

router = APIRouter()


def page_url(api_url: str) -> str:
    """Where a notification's item is shown: pages sit at the API's paths, unprefixed."""
    return api_url.removeprefix(API_PREFIX) or "/"


@router.get("/inbox")
async def inbox(page: PageDep, cursor: str | None = None, unread: bool = False) -> Response:
    page.require_person()
    notifications = await page.api.get(
        "/notifications", cursor=cursor, limit=30, unread=unread or None
    )
    for item in notifications["items"]:
        item["page_url"] = page_url(item["url"])
    return await page.render(
        "inbox/inbox.html",
        title="Inbox",
        notifications=notifications,
        only_unread=unread,
        cursor=cursor,
    )


@router.post("/inbox/{notification_id}/read")
async def mark_read(notification_id: UUID, page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    await page.api.post(f"/notifications/{notification_id}/read")
    return redirect(safe_next(str(form.get("open", "")), default="/inbox"))


@router.post("/inbox/read-all")
async def mark_all_read(page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    before = str(form.get("before", "")) or None
    await page.api.post("/notifications/read-all", {"before": before} if before else {})
    return redirect("/inbox")


@router.get("/inbox/live")
async def live(page: PageDep) -> Response:
    """The person's notifications as Server-Sent Events, relayed from the API."""
    page.require_person()
    headers = {"accept": "text/event-stream"}
    last_event_id = page.request.headers.get("last-event-id")
    if last_event_id:
        headers["last-event-id"] = last_event_id[:64]
    api = page.api
    # Opened before answering: a refusal (401, 503) is a proper answer, not a broken stream.
    stream_context = api.stream("/notifications/stream", headers)
    upstream = await stream_context.__aenter__()

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await stream_context.__aexit__(None, None, None)

    return StreamingResponse(
        relay(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
