"""One's settings (profile, password, notification preferences, data export) and the
digest preview.

Everything goes through the public API as the person: `PATCH /users/me` with the ETag
the page read (If-Match), `POST /auth/password`, `GET/PATCH /notifications/preferences`,
`GET /digests/me`, and the export parts under `/users/me/export`.
"""

import asyncio
import json
from datetime import UTC, datetime
from functools import cache
from typing import Any
from zoneinfo import available_timezones

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.datastructures import FormData

from services.web.api import ApiError
from services.web.pages.base import PageDep, redirect

router = APIRouter()

# What each kind of notification is, as the preferences form names it.
KINDS: dict[str, str] = {
    "mention": "Someone mentions me",
    "reply": "A reply to my post",
    "answer": "An answer to my question",
    "comment": "A comment on my question or answer",
    "accepted": "My answer is accepted",
    "routed": "A question is routed to me",
    "escalated": "My unanswered question goes to more people",
    "group_added": "I am added to a group",
    "role_changed": "My role in a group changes",
    "digest": "My digest is ready",
}
CHANNELS: dict[str, str] = {
    "inbox": "Inbox",
    "email": "Inbox and e-mail",
    "off": "Off",
}
FREQUENCIES: dict[str, str] = {"daily": "Daily", "weekly": "Weekly", "never": "Never"}
# Shown once after a redirect, named in the query (`?saved=profile`): never request text.
SAVED = {
    "profile": "Your profile is saved.",
    "password": "Your password is changed; your other sessions have ended.",
    "preferences": "Your notification preferences are saved.",
}
# One's data, part by part: the web path (the API's path without /api/v1) and a file name.
EXPORTS: dict[str, tuple[str, str]] = {
    "profile": ("/users/me/export", "Your profile, follows and group memberships"),
    "posts": ("/users/me/export/posts", "Your questions, answers, posts and articles"),
    "notifications": ("/users/me/export/notifications", "Your notifications and preferences"),
}


@cache
def time_zones() -> list[str]:
    """IANA time zone names, for the digest schedule."""
    return sorted(name for name in available_timezones() if "/" in name or name == "UTC")


def skills_of(text: str) -> list[str]:
    """Skills typed as a comma-separated list: trimmed, blanks and repeats left out."""
    skills: list[str] = []
    for part in text.split(","):
        skill = part.strip()
        if skill and skill.lower() not in {known.lower() for known in skills}:
            skills.append(skill)
    return skills


def preferences_patch(form: FormData) -> dict[str, Any]:
    """The preferences form as `PATCH /notifications/preferences` wants it."""
    channels = {
        kind: str(form.get(f"channel_{kind}"))
        for kind in KINDS
        if form.get(f"channel_{kind}") is not None
    }
    patch: dict[str, Any] = {"channels": channels}
    hour = str(form.get("digest_hour", "")).strip()
    patch["digest"] = {
        "frequency": str(form.get("digest_frequency", "")) or None,
        "hour": int(hour) if hour.isdigit() else None,
        "timezone": str(form.get("digest_timezone", "")).strip() or None,
    }
    patch["digest"] = {key: value for key, value in patch["digest"].items() if value is not None}
    if form.get("quiet") == "on":
        patch["quiet_hours"] = {
            "start": str(form.get("quiet_start", "")).strip(),
            "end": str(form.get("quiet_end", "")).strip(),
        }
    else:
        patch["quiet_hours"] = None
    return patch


def shown_preferences(patch: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """What the form showed, over what the API has: a refused form keeps its values."""
    digest = {**current["digest"], **patch.get("digest", {})}
    return {
        "channels": {**current["channels"], **patch.get("channels", {})},
        "digest": digest,
        "quiet_hours": patch.get("quiet_hours"),
    }


async def render_settings(
    page: PageDep,
    *,
    status: int = 200,
    profile: dict[str, Any] | None = None,
    etag: str | None = None,
    preferences: dict[str, Any] | None = None,
    errors: dict[str, dict[str, str]] | None = None,
    alerts: dict[str, str] | None = None,
) -> Response:
    """The settings page; what a refused form sent replaces what the API has."""
    if profile is None or preferences is None:
        (me, me_etag), current = await asyncio.gather(
            page.api.get_with_etag("/users/me"), page.api.get("/notifications/preferences")
        )
        profile = profile or {**me, "skills": ", ".join(me["skills"])}
        etag = etag or me_etag
        preferences = preferences or current
    return await page.render(
        "settings/settings.html",
        status=status,
        title="Settings",
        profile=profile,
        etag=etag or "",
        preferences=preferences,
        kinds=KINDS,
        channels=CHANNELS,
        frequencies=FREQUENCIES,
        time_zones=time_zones(),
        exports=EXPORTS,
        errors=errors or {},
        alerts=alerts or {},
        saved=SAVED.get(page.request.query_params.get("saved", "")),
        saved_part=page.request.query_params.get("saved", ""),
    )


def redirect_to_part(part: str) -> Response:
    """Back to the settings, at the part just saved (where its notice is)."""
    anchor = {"preferences": "notifications"}.get(part, part)
    response = redirect("/settings", saved=part)
    response.headers["location"] += f"#{anchor}"
    return response


@router.get("/settings")
async def settings_page(page: PageDep) -> Response:
    page.require_person()
    return await render_settings(page)


@router.post("/settings/profile")
async def save_profile(page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    values = {
        "display_name": str(form.get("display_name", "")).strip(),
        "bio": str(form.get("bio", "")).replace("\r\n", "\n"),
        "skills": str(form.get("skills", "")),
    }
    etag = str(form.get("etag", "")) or None
    body = {**values, "skills": skills_of(values["skills"])}
    try:
        await page.api.patch("/users/me", body, etag=etag)
    except ApiError as exc:
        if exc.status == 412:
            # Changed elsewhere since this page was read: show what is there now.
            return await render_settings(
                page,
                status=409,
                alerts={
                    "profile": "Your profile changed elsewhere since you opened this page. "
                    "This is how it is now: make your change again."
                },
            )
        if exc.status not in (400, 409, 422):
            raise
        return await render_settings(
            page,
            status=exc.status,
            profile={**values, "email": str(form.get("email", ""))},
            etag=etag,
            errors={"profile": exc.field_errors},
            alerts={"profile": exc.detail},
        )
    return redirect_to_part("profile")


@router.post("/settings/password")
async def change_password(page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    current = str(form.get("current_password", ""))
    new = str(form.get("new_password", ""))
    if new != str(form.get("new_password_again", "")):
        return await render_settings(
            page,
            status=422,
            errors={"password": {"new_password_again": "The two new passwords differ."}},
            alerts={"password": "Type the same new password twice."},
        )
    try:
        await page.api.post("/auth/password", {"current_password": current, "new_password": new})
    except ApiError as exc:
        if exc.status not in (400, 403, 422, 429):
            raise
        field = "current_password" if exc.status == 403 else "new_password"
        return await render_settings(
            page,
            status=exc.status,
            errors={"password": {field: exc.detail, **exc.field_errors}},
            alerts={"password": "Your password is not changed."},
        )
    return redirect_to_part("password")


@router.post("/settings/notifications")
async def save_preferences(page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    patch = preferences_patch(form)
    try:
        await page.api.patch("/notifications/preferences", patch)
    except ApiError as exc:
        if exc.status not in (400, 422):
            raise
        current = await page.api.get("/notifications/preferences")
        errors = {
            ("quiet_start" if name in ("start", "end", "quiet_hours") else name): message
            for name, message in exc.field_errors.items()
        }
        return await render_settings(
            page,
            status=exc.status,
            preferences=shown_preferences(patch, current),
            errors={"preferences": errors},
            alerts={"preferences": exc.detail},
        )
    return redirect_to_part("preferences")


@router.get("/users/me/export")
async def export_profile(page: PageDep) -> Response:
    return await export_part(page, "profile")


@router.get("/users/me/export/{part}")
async def export_other_part(part: str, page: PageDep) -> Response:
    if part not in EXPORTS or part == "profile":
        return Response(status_code=404)
    return await export_part(page, part)


async def export_part(page: PageDep, part: str) -> Response:
    """One part of one's data, downloaded as the API gives it (JSON)."""
    page.require_person()
    data = await page.api.get(EXPORTS[part][0])
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        media_type="application/json",
        headers={
            "content-disposition": f'attachment; filename="knowflow-{part}-{stamp}.json"',
            "cache-control": "no-store",
            "x-content-type-options": "nosniff",
        },
    )


# --- the digest preview -----------------------------------------------------------------

PERIODS = {"daily": "Last 24 hours", "weekly": "Last 7 days"}
REASONS = {"person": "From {label}", "group": "In {label}", "tag": "Tagged {label}"}


def item_url(item: dict[str, Any]) -> str | None:
    """Where a digest item is shown: pages sit at the API's paths, unprefixed."""
    kind = item.get("kind")
    content_id = item.get("content_id")
    if kind in ("post", "reply"):
        return f"/posts/{content_id}"
    if kind == "question":
        return f"/questions/{content_id}"
    if kind == "article":
        return f"/articles/{content_id}"
    return None


@router.get("/digests/me")
async def digest_preview(
    page: PageDep, period: str = "daily", until: str | None = None
) -> Response:
    page.require_person()
    period = period if period in PERIODS else "daily"
    digest = await page.api.get("/digests/me", period=period, until=until)
    for section in digest["sections"]:
        for item in section["items"]:
            item["page_url"] = item_url(item)
    return await page.render(
        "settings/digest.html",
        title="Your digest",
        digest=digest,
        period=period,
        periods=PERIODS,
        reasons=REASONS,
        until=until,
    )
