"""Groups: browse (open groups and one's own), create, join, ask to join a private one,
leave; a group's page with its members and their roles, what its managers do (roles,
removals, requests to join), following it, and its recent content.

A private group one is not in is a 404 page like any unknown id (the API answers 404
for both); the page offers to ask to join, which tells nothing the visitor did not know.
"""

import asyncio
from typing import Any
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import Response

from services.web.api import ApiError
from services.web.pages.base import Page, PageDep, redirect
from services.web.pages.people import following, recent_items

router = APIRouter()

MANAGERS = ("owner", "moderator")
RECENT = 5
# Members on a group's page; more are a "More members" link away (the API's cursor).
MEMBERS_SHOWN = 50
NOTICES = {
    "created": "Your group is ready. Invite people by sharing this page's address.",
    "joined": "You joined the group.",
    "left": "You left the group.",
    "requested": "Your request to join was sent. The group's owner or a moderator decides.",
    "followed": "You follow this group: its new content comes to your home page and digest.",
    "unfollowed": "You no longer follow this group.",
    "role": "Their role is changed.",
    "removed": "They are no longer a member.",
    "approved": "Request approved: they are a member now.",
    "declined": "Request declined.",
}
EMPTY_GROUP = {"name": "", "slug": "", "description": "", "visibility": "open"}


def _refused(exc: ApiError) -> bool:
    """A refusal to show next to the form (not a reason to leave the page)."""
    return 400 <= exc.status < 500 and exc.status not in (401, 403, 404)


async def _mine(page: Page) -> list[dict[str, Any]]:
    """The person's requests to join (pending first); none if the API has no such list."""
    try:
        found = await page.api.get("/users/me/join-requests", limit=20)
    except ApiError as exc:
        if exc.status in (404, 405):
            return []
        raise
    return [item for item in found["items"] if item["status"] == "pending"]


async def render_groups(
    page: Page,
    *,
    status: int = 200,
    notice: str | None = None,
    error: str | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    groups, pending = await asyncio.gather(page.api.get_all("/groups"), _mine(page))
    mine = [group for group in groups if group["is_member"]]
    others = [group for group in groups if not group["is_member"]]
    return await page.render(
        "groups/groups.html",
        status=status,
        title="Groups",
        mine=mine,
        others=others,
        pending=pending,
        notice=notice,
        error=error,
        values=values or EMPTY_GROUP,
        errors=errors or {},
    )


@router.get("/groups")
async def groups_page(page: PageDep, done: str | None = None) -> Response:
    page.require_person()
    return await render_groups(page, notice=NOTICES.get(done or ""))


@router.post("/groups")
async def create_group(page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    values = {name: str(form.get(name, "")).strip() for name in ("name", "slug", "description")}
    values["visibility"] = "private" if form.get("visibility") == "private" else "open"
    try:
        group = await page.api.post("/groups", values)
    except ApiError as exc:
        if not _refused(exc):
            raise
        return await render_groups(
            page, status=exc.status, error=exc.detail, values=values, errors=exc.field_errors
        )
    return redirect(f"/groups/{group['id']}", done="created")


async def render_group(
    page: Page,
    group_id: UUID,
    *,
    status: int = 200,
    notice: str | None = None,
    error: str | None = None,
    members_cursor: str | None = None,
) -> Response:
    person = page.require_person()
    try:
        group = await page.api.get(f"/groups/{group_id}")
    except ApiError as exc:
        if exc.status != 404:
            raise
        return await page.render(
            "groups/unknown.html", status=404, title="Nothing here", group_id=group_id
        )
    manager = group.get("role") in MANAGERS
    path = f"/groups/{group_id}"
    members, follows, posts, questions, articles, requests = await asyncio.gather(
        page.api.get(f"{path}/members", limit=MEMBERS_SHOWN, cursor=members_cursor),
        page.api.get_all("/follows"),
        page.api.get("/posts", group_id=str(group_id), limit=RECENT),
        page.api.get("/questions", group_id=str(group_id), limit=RECENT),
        page.api.get("/articles", group_id=str(group_id), limit=RECENT),
        _requests(page, path) if manager and group["visibility"] == "private" else _none(),
    )
    follow_id = following(follows, "group", str(group_id))
    return await page.render(
        "groups/group.html",
        status=status,
        title=group["name"],
        group=group,
        members=members["items"],
        more_members=members["next_cursor"],
        members_cursor=members_cursor,
        me=person.id,
        manager=manager,
        owner=group.get("role") == "owner",
        follow_id=follow_id,
        recent=recent_items(posts, questions, articles),
        requests=requests,
        notice=notice,
        error=error,
    )


async def _requests(page: Page, path: str) -> list[dict[str, Any]]:
    try:
        found = await page.api.get(f"{path}/join-requests", limit=50)
    except ApiError as exc:
        if exc.status in (403, 404, 405):
            return []
        raise
    return [item for item in found["items"] if item["status"] == "pending"]


async def _none() -> list[dict[str, Any]]:
    return []


@router.get("/groups/{group_id}")
async def group_page(
    group_id: UUID, page: PageDep, done: str | None = None, members_cursor: str | None = None
) -> Response:
    """The group's page; `members_cursor` shows a later page of its members."""
    return await render_group(
        page, group_id, notice=NOTICES.get(done or ""), members_cursor=members_cursor
    )


async def act(page: Page, group_id: UUID, call: Any, done: str) -> Response:
    """Do what a group form asks, then back to the group's page (or its refusal shown)."""
    try:
        await call
    except ApiError as exc:
        if not _refused(exc) and exc.status != 403:
            raise
        return await render_group(page, group_id, status=exc.status, error=exc.detail)
    return redirect(f"/groups/{group_id}", done=done)


@router.post("/groups/{group_id}/join")
async def join(group_id: UUID, page: PageDep) -> Response:
    person = page.require_person()
    await page.form()
    call = page.api.post(f"/groups/{group_id}/members", {"user_id": person.id})
    return await act(page, group_id, call, "joined")


@router.post("/groups/{group_id}/leave")
async def leave(group_id: UUID, page: PageDep) -> Response:
    person = page.require_person()
    await page.form()
    try:
        await page.api.delete(f"/groups/{group_id}/members/{person.id}")
    except ApiError as exc:
        if not _refused(exc):
            raise
        return await render_group(page, group_id, status=exc.status, error=exc.detail)
    # A private group is not to be seen once left: back to the list.
    return redirect("/groups", done="left")


@router.post("/groups/{group_id}/join-requests")
async def request_to_join(group_id: UUID, page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    message = str(form.get("message", "")).strip()[:500]
    try:
        await page.api.post(f"/groups/{group_id}/join-requests", {"message": message})
    except ApiError as exc:
        if exc.status == 404:
            raise
        if exc.status == 400:  # an open group after all: its page has the Join button
            return redirect(f"/groups/{group_id}")
        if exc.status != 409:  # already asked, or already in: what was asked is so
            raise
    return redirect("/groups", done="requested")


@router.post("/groups/{group_id}/join-requests/{request_id}/{decision}")
async def decide(group_id: UUID, request_id: UUID, decision: str, page: PageDep) -> Response:
    page.require_person()
    await page.form()
    if decision not in ("approve", "decline"):
        return await render_group(page, group_id, status=400, error="Approve or decline.")
    call = page.api.post(f"/groups/{group_id}/join-requests/{request_id}/{decision}")
    return await act(page, group_id, call, f"{decision}d")


@router.post("/groups/{group_id}/members/{user_id}/role")
async def change_role(group_id: UUID, user_id: UUID, page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    role = str(form.get("role", ""))
    call = page.api.put(f"/groups/{group_id}/members/{user_id}/role", {"role": role})
    return await act(page, group_id, call, "role")


@router.post("/groups/{group_id}/members/{user_id}/remove")
async def remove_member(group_id: UUID, user_id: UUID, page: PageDep) -> Response:
    page.require_person()
    await page.form()
    call = page.api.delete(f"/groups/{group_id}/members/{user_id}")
    return await act(page, group_id, call, "removed")


@router.post("/groups/{group_id}/follow")
async def follow_group(group_id: UUID, page: PageDep) -> Response:
    page.require_person()
    await page.form()
    try:
        await page.api.post("/follows", {"target_type": "group", "target": str(group_id)})
    except ApiError as exc:
        if exc.status != 409:
            raise
    return redirect(f"/groups/{group_id}", done="followed")


@router.post("/groups/{group_id}/unfollow")
async def unfollow_group(group_id: UUID, page: PageDep) -> Response:
    page.require_person()
    await page.form()
    follow_id = following(await page.api.get_all("/follows"), "group", str(group_id))
    if follow_id is not None:
        try:
            await page.api.delete(f"/follows/{follow_id}")
        except ApiError as exc:
            if exc.status != 404:  # already gone
                raise
    return redirect(f"/groups/{group_id}", done="unfollowed")
