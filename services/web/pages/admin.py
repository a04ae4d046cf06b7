"""Admin pages (organisation admins only): knowledge health with charts, users and roles,
the audit log, and webhooks.

A visitor who is signed in but not an admin gets the 403 page on every URL here; the API
refuses them too, so the check here only spares them a page of refusals. Charts are SVG
drawn on the server (geometry from `services.web.charts`, attributes only: the CSP
forbids inline styles), and every chart's figures are also in a table beside it.
"""

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from services.web.api import ApiError
from services.web.charts import MAX_BARS, BarChart, bar_chart
from services.web.pages.base import Page, PageDep, redirect
from services.web.session import Person

router = APIRouter()

# --- what the health charts show ----------------------------------------------------------


def percent_text(value: float | None) -> str:
    return "n/a" if value is None else f"{round(value * 100)}%"


def hours_text(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value < 1:
        return f"{round(value * 60)} min"
    if value < 48:
        return f"{value:.1f} h"
    return f"{value / 24:.1f} d"


def people_text(value: float | None) -> str:
    if value is None:
        return "n/a"
    count = int(value)
    return f"{count} {'person' if count == 1 else 'people'}"


def health_charts(items: list[dict[str, Any]], prefix: str) -> list[BarChart]:
    """The three questions a person asks of knowledge health, one chart each: are questions
    answered, how soon, and how many people hold the knowledge (the bus factor)."""
    ranked = sorted(items, key=lambda item: (-item["questions"], item["tag"]))[:MAX_BARS]
    return [
        bar_chart(
            id=f"{prefix}-answered",
            title="Share of questions answered",
            rows=[(f"#{item['tag']}", item["answered_share"]) for item in ranked],
            shown=percent_text,
            scale_max=1.0,
            warn=lambda value: value is not None and value < 0.5,
            tick_label=lambda value: f"{round(value * 100)}%",
            note="Red: fewer than half answered.",
        ),
        bar_chart(
            id=f"{prefix}-first-answer",
            title="Median time to first answer (hours)",
            rows=[(f"#{item['tag']}", item["median_hours_to_first_answer"]) for item in ranked],
            shown=hours_text,
            warn=lambda value: value is not None and value > 24,
            note="Red: a day or more. No bar: nothing answered yet.",
        ),
        bar_chart(
            id=f"{prefix}-bus-factor",
            title="Bus factor: people who answered",
            rows=[(f"#{item['tag']}", float(item["evidence_holders"])) for item in ranked],
            shown=people_text,
            warn=lambda value: value is not None and value <= 1,
            note="Red: one person or nobody holds this knowledge.",
            whole=True,
        ),
    ]


# --- access -------------------------------------------------------------------------------


def require_admin(page: Page) -> Person:
    """The signed-in organisation admin; anyone else gets the 403 page."""
    person = page.require_person()
    if not person.is_admin:
        raise HTTPException(403, "Only an organisation admin sees the admin pages.")
    return person


# Shown once after a redirect, named in the query (`?done=`): never request text.
DONE = {
    "role": "The role is changed; their current sessions must sign in again.",
    "deactivated": "The person is deactivated: they can no longer sign in.",
    "reactivated": "The person is reactivated: they can sign in again.",
    "disabled": "The endpoint is disabled: nothing is delivered to it.",
    "enabled": "The endpoint is enabled again.",
    "deleted": "The endpoint is deleted.",
    "replayed": "The events are queued for delivery again.",
}


# Refusals worth saying on the page they came from (named in `?done=` too).
REFUSED = {
    "last-admin": "That is the last admin: make someone else admin first.",
}


def done_message(page: Page) -> str | None:
    return DONE.get(page.request.query_params.get("done", ""))


def refused_message(page: Page) -> str | None:
    return REFUSED.get(page.request.query_params.get("done", ""))


# --- knowledge health ---------------------------------------------------------------------


@router.get("/admin")
async def health_page(page: PageDep, unanswered_after_hours: int = 24) -> Response:
    require_admin(page)
    hours = min(max(unanswered_after_hours, 1), 24 * 90)
    tags, groups = await asyncio.gather(
        page.api.get("/knowledge-health/tags", unanswered_after_hours=hours),
        page.api.get_all("/groups"),
    )
    return await page.render(
        "admin/health.html",
        title="Knowledge health",
        health=tags,
        items=sorted(tags["items"], key=lambda item: (-item["questions"], item["tag"])),
        charts=health_charts(tags["items"], "tags"),
        groups=groups,
        hours=hours,
        hours_text=hours_text,
        max_bars=MAX_BARS,
        done_message=done_message(page),
    )


@router.get("/admin/groups/{group_id}")
async def group_health_page(
    group_id: UUID, page: PageDep, unanswered_after_hours: int = 24
) -> Response:
    require_admin(page)
    hours = min(max(unanswered_after_hours, 1), 24 * 90)
    health, group = await asyncio.gather(
        page.api.get(f"/knowledge-health/groups/{group_id}", unanswered_after_hours=hours),
        page.api.get(f"/groups/{group_id}"),
    )
    return await page.render(
        "admin/group_health.html",
        title=f"Knowledge health: {group['name']}",
        health=health,
        items=sorted(health["tags"], key=lambda item: (-item["questions"], item["tag"])),
        charts=health_charts(health["tags"], "group"),
        group=group,
        hours=hours,
        hours_text=hours_text,
    )


# --- users and roles ----------------------------------------------------------------------

ROLES = {"member": "Member", "analyst": "Analyst", "admin": "Admin"}


@router.get("/admin/users")
async def users_page(
    page: PageDep,
    q: str | None = None,
    role: str | None = None,
    inactive: bool = False,
    cursor: str | None = None,
) -> Response:
    require_admin(page)
    q = (q or "").strip()[:100] or None
    role = role if role in ROLES else None
    people = await page.api.get(
        "/users", q=q, role=role, include_inactive=inactive or None, cursor=cursor, limit=30
    )
    return await page.render(
        "admin/users.html",
        title="Users and roles",
        people=people,
        roles=ROLES,
        q=q or "",
        role=role or "",
        inactive=inactive,
        back=page.request.url.path
        + (f"?{page.request.url.query}" if page.request.url.query else ""),
        done_message=done_message(page),
        refused=refused_message(page),
    )


def back_to(value: object, default: str) -> str:
    """Where a form on a list goes back to: that list's own URL, nothing else."""
    target = str(value or "")
    return target if target.startswith(default) and "//" not in target else default


def with_done(target: str, done: str) -> str:
    """`target` with `done=` set (replacing an earlier one)."""
    path, _, query = target.partition("?")
    kept = [part for part in query.split("&") if part and not part.startswith("done=")]
    return path + "?" + "&".join([*kept, f"done={done}"])


@router.post("/admin/users/{user_id}/role")
async def change_role(user_id: UUID, page: PageDep) -> Response:
    require_admin(page)
    form = await page.form()
    role = str(form.get("role", ""))
    back = back_to(form.get("back"), "/admin/users")
    try:
        await page.api.put(f"/users/{user_id}/role", {"role": role})
    except ApiError as exc:
        if exc.status != 409:
            raise
        return redirect(with_done(back, "last-admin"))
    return redirect(with_done(back, "role"))


@router.post("/admin/users/{user_id}/{action}")
async def change_access(user_id: UUID, action: str, page: PageDep) -> Response:
    require_admin(page)
    if action not in ("deactivate", "reactivate"):
        raise HTTPException(404, "There is no such page.")
    form = await page.form()
    await page.api.post(f"/users/{user_id}/{action}")
    return redirect(with_done(back_to(form.get("back"), "/admin/users"), f"{action}d"))


# --- the audit log ------------------------------------------------------------------------

MAX_NAMED_PEOPLE = 20


def rfc3339(value: str | None) -> str | None:
    """A `datetime-local` input (read as UTC) as RFC 3339, or None if blank or unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_ids_in(entries: list[dict[str, Any]]) -> list[str]:
    """The people an audit page names (actors, and `user:` targets), once each, capped."""
    seen: dict[str, None] = {}
    for entry in entries:
        for candidate in (entry.get("actor_id"), entry["target"].removeprefix("user:")):
            if candidate and len(seen) < MAX_NAMED_PEOPLE:
                try:
                    seen.setdefault(str(UUID(str(candidate))), None)
                except ValueError:
                    continue
    return list(seen)


async def names_of(page: Page, user_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Who these ids are (one concurrent read each; a page names a handful)."""

    async def one(user_id: str) -> dict[str, Any] | None:
        try:
            user: dict[str, Any] = await page.api.get(f"/users/{user_id}")
        except ApiError:
            return None  # erased or unknown: shown by id
        return user

    found = await asyncio.gather(*(one(user_id) for user_id in user_ids))
    return {user_id: user for user_id, user in zip(user_ids, found, strict=True) if user}


@router.get("/admin/audit")
async def audit_page(
    page: PageDep,
    action: str | None = None,
    target: str | None = None,
    actor_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
) -> Response:
    require_admin(page)
    filters = {
        "action": (action or "").strip()[:100],
        "target": (target or "").strip()[:200],
        "actor_id": (actor_id or "").strip()[:36],
        "since": (since or "")[:32],
        "until": (until or "")[:32],
    }
    error = None
    try:
        entries = await page.api.get(
            "/audit",
            action=filters["action"],
            target=filters["target"],
            actor_id=filters["actor_id"],
            since=rfc3339(filters["since"]),
            until=rfc3339(filters["until"]),
            cursor=cursor,
            limit=50,
        )
    except ApiError as exc:
        if exc.status not in (400, 422):
            raise
        entries = {"items": [], "next_cursor": None}
        error = f"Check the filters: {exc.detail}"
    people = await names_of(page, user_ids_in(entries["items"]))
    return await page.render(
        "admin/audit.html",
        status=400 if error else 200,
        title="Audit log",
        entries=entries,
        people=people,
        filters=filters,
        error=error,
    )


# --- webhooks -----------------------------------------------------------------------------

AUDIENCES = {
    "public": "Public events",
    "restricted": "Restricted events",
    "public_or_restricted": "Public or restricted",
}
DELIVERY_STATUSES = ("pending", "delivering", "delivered", "failed")


def webhook_form_values(form: Any) -> dict[str, Any]:
    return {
        "url": str(form.get("url", "")).strip(),
        "description": str(form.get("description", "")).strip(),
        "event_types": [str(value) for value in form.getlist("event_types")],
        "restricted_event_types": [str(value) for value in form.getlist("restricted_event_types")],
    }


async def render_webhooks(
    page: Page,
    *,
    status: int = 200,
    cursor: str | None = None,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
) -> Response:
    endpoints, types = await asyncio.gather(
        page.api.get("/webhooks/endpoints", cursor=cursor, limit=50),
        page.api.get("/webhooks/event-types"),
    )
    return await page.render(
        "admin/webhooks.html",
        status=status,
        title="Webhooks",
        endpoints=endpoints,
        public_types=[item for item in types if item["audience"] != "restricted"],
        restricted_types=[item for item in types if item["audience"] != "public"],
        values=values
        or {"url": "", "description": "", "event_types": [], "restricted_event_types": []},
        errors=errors or {},
        error=error,
        done_message=done_message(page),
    )


@router.get("/admin/webhooks")
async def webhooks_page(page: PageDep, cursor: str | None = None) -> Response:
    require_admin(page)
    return await render_webhooks(page, cursor=cursor)


@router.post("/admin/webhooks")
async def create_webhook(page: PageDep) -> Response:
    require_admin(page)
    form = await page.form()
    values = webhook_form_values(form)
    body = {
        "url": values["url"],
        "description": values["description"],
        "event_types": values["event_types"],
        "restricted_event_types": values["restricted_event_types"],
    }
    try:
        created = await page.api.post("/webhooks/endpoints", body)
    except ApiError as exc:
        if exc.status not in (400, 409, 422):
            raise
        return await render_webhooks(
            page, status=exc.status, values=values, errors=exc.field_errors, error=exc.detail
        )
    # The secret is shown only now, on this answer (never stored, never in a URL).
    return await page.render(
        "admin/webhook_secret.html",
        title="Webhook created",
        endpoint=created,
        secret=created["secret"],
        rotated=False,
    )


@router.get("/admin/webhooks/{endpoint_id}")
async def webhook_page(
    endpoint_id: UUID, page: PageDep, status: str | None = None, cursor: str | None = None
) -> Response:
    require_admin(page)
    status = status if status in DELIVERY_STATUSES else None
    endpoint, deliveries = await asyncio.gather(
        page.api.get(f"/webhooks/endpoints/{endpoint_id}"),
        page.api.get(
            f"/webhooks/endpoints/{endpoint_id}/deliveries", status=status, cursor=cursor, limit=30
        ),
    )
    return await page.render(
        "admin/webhook.html",
        title=f"Webhook {endpoint['url']}",
        endpoint=endpoint,
        deliveries=deliveries,
        status_filter=status or "",
        statuses=DELIVERY_STATUSES,
        done_message=done_message(page),
        error=None,
    )


@router.post("/admin/webhooks/{endpoint_id}/enabled")
async def set_webhook_enabled(endpoint_id: UUID, page: PageDep) -> Response:
    require_admin(page)
    form = await page.form()
    enabled = form.get("enabled") == "true"
    await page.api.patch(f"/webhooks/endpoints/{endpoint_id}", {"enabled": enabled})
    return redirect(f"/admin/webhooks/{endpoint_id}", done="enabled" if enabled else "disabled")


@router.post("/admin/webhooks/{endpoint_id}/delete")
async def delete_webhook(endpoint_id: UUID, page: PageDep) -> Response:
    require_admin(page)
    await page.form()
    await page.api.delete(f"/webhooks/endpoints/{endpoint_id}")
    return redirect("/admin/webhooks", done="deleted")


@router.post("/admin/webhooks/{endpoint_id}/rotate-secret")
async def rotate_webhook_secret(endpoint_id: UUID, page: PageDep) -> Response:
    require_admin(page)
    await page.form()
    rotated = await page.api.post(f"/webhooks/endpoints/{endpoint_id}/rotate-secret")
    endpoint = await page.api.get(f"/webhooks/endpoints/{endpoint_id}")
    return await page.render(
        "admin/webhook_secret.html",
        title="New webhook secret",
        endpoint=endpoint,
        secret=rotated["secret"],
        rotated=True,
    )


@router.post("/admin/webhooks/{endpoint_id}/replay")
async def replay_webhook(endpoint_id: UUID, page: PageDep) -> Response:
    require_admin(page)
    form = await page.form()
    since = rfc3339(str(form.get("since", "")))
    try:
        if since is None:
            raise ApiError(422, "Say from when to deliver again (a date and time, UTC).")
        await page.api.post(f"/webhooks/endpoints/{endpoint_id}/replay", {"since": since})
    except ApiError as exc:
        if exc.status not in (400, 409, 422):
            raise
        endpoint, deliveries = await asyncio.gather(
            page.api.get(f"/webhooks/endpoints/{endpoint_id}"),
            page.api.get(f"/webhooks/endpoints/{endpoint_id}/deliveries", limit=30),
        )
        return await page.render(
            "admin/webhook.html",
            status=exc.status,
            title=f"Webhook {endpoint['url']}",
            endpoint=endpoint,
            deliveries=deliveries,
            status_filter="",
            statuses=DELIVERY_STATUSES,
            done_message=None,
            error=exc.detail,
        )
    return redirect(f"/admin/webhooks/{endpoint_id}", done="replayed")
