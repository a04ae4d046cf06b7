"""A person's page, `/people/@{handle}`: who they are, what they know about (with the items
that show it), what they wrote lately, and following them.

Everything is read as the signed-in person: topics, evidence and recent items are only
what the reader may see, so a private group's content never shows to an outsider here.
"""

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from services.web.api import ApiError
from services.web.pages.base import Page, PageDep, redirect
from services.web.pages.search import snippet_parts
from services.web.rendering import item_url

router = APIRouter()

RECENT = 5
NOTICES = {
    "followed": "You follow them now: what they write comes to your home page and digest.",
    "unfollowed": "You no longer follow them.",
}


async def check_person(page: Page, handle: str) -> dict[str, Any]:
    """The person with exactly this handle, or a 404 page."""
    wanted = handle.strip().lower()
    if not wanted or len(wanted) > 100:
        raise HTTPException(404)
    found = await page.api.get("/users", q=wanted, limit=100)
    for person in found["items"]:
        if str(person["handle"]).lower() == wanted:
            return dict(person)
    raise HTTPException(404)


def following(follows: list[dict[str, Any]], target_type: str, target: str) -> str | None:
    """The id of the reader's follow of this target, if they follow it."""
    for follow in follows:
        if follow["target_type"] == target_type and str(follow["target"]) == target:
            return str(follow["id"])
    return None


def recent_items(
    posts: dict[str, Any], questions: dict[str, Any], articles: dict[str, Any]
) -> list[dict[str, Any]]:
    """Posts, replies, questions and articles together, newest first, each with its page."""
    items = [
        {
            "kind": post["kind"],
            "title": None,
            "text": " ".join(post["body"].split())[:120],
            "url": item_url(post["kind"], post["id"], post.get("thread_id")),
            "created_at": post["created_at"],
            "tags": post["tags"],
        }
        for post in posts["items"]
    ]
    items += [
        {
            "kind": "question",
            "title": question["title"],
            "text": "",
            "url": item_url("question", question["id"]),
            "created_at": question["created_at"],
            "tags": question["tags"],
        }
        for question in questions["items"]
    ]
    items += [
        {
            "kind": "article",
            "title": article["title"],
            "text": "",
            "url": item_url("article", article["id"]),
            "created_at": article["created_at"],
            "tags": article["tags"],
        }
        for article in articles["items"]
    ]
    items.sort(key=lambda item: str(item["created_at"]), reverse=True)
    return items[: RECENT * 2]


async def _expertise(page: Page, user_id: str) -> dict[str, Any]:
    """What they know about; nothing yet while their profile is still on its way to search."""
    try:
        found: dict[str, Any] = await page.api.get(f"/experts/{user_id}", limit=5)
    except ApiError as exc:
        if exc.status != 404:
            raise
        return {"topics": []}
    return found


@router.get("/people/@{handle}")
async def person_page(handle: str, page: PageDep, done: str | None = None) -> Response:
    page.require_person()
    return await render_person(page, handle, notice=NOTICES.get(done or ""))


async def render_person(
    page: Page, handle: str, *, notice: str | None = None, error: str | None = None
) -> Response:
    person = await check_person(page, handle)
    user_id = str(person["id"])
    expertise, follows, posts, questions, articles = await asyncio.gather(
        _expertise(page, user_id),
        page.api.get_all("/follows"),
        page.api.get("/posts", author_id=user_id, limit=RECENT),
        page.api.get("/questions", author_id=user_id, limit=RECENT),
        page.api.get("/articles", author_id=user_id, limit=RECENT),
    )
    for topic in expertise["topics"]:
        for item in topic["evidence"]:
            item["url"] = item_url(item["kind"], item["content_id"], item.get("thread_id"))
            item["parts"] = snippet_parts(item.get("snippet"))
    me = page.person
    return await page.render(
        "people/person.html",
        title=f"{person['display_name']} (@{person['handle']})",
        profile=person,
        topics=expertise["topics"],
        recent=recent_items(posts, questions, articles),
        follow_id=following(follows, "user", user_id),
        is_me=me is not None and me.id == user_id,
        notice=notice,
        error=error,
    )


@router.post("/people/@{handle}/follow")
async def follow_person(handle: str, page: PageDep) -> Response:
    page.require_person()
    await page.form()
    person = await check_person(page, handle)
    try:
        await page.api.post("/follows", {"target_type": "user", "target": str(person["id"])})
    except ApiError as exc:
        if exc.status != 409:  # already following: what was asked is so
            if exc.status >= 500 or exc.status in (401, 403):
                raise
            return await render_person(page, handle, error=exc.detail)
    return redirect(f"/people/@{person['handle']}", done="followed")


@router.post("/people/@{handle}/unfollow")
async def unfollow_person(handle: str, page: PageDep) -> Response:
    page.require_person()
    await page.form()
    person = await check_person(page, handle)
    follow_id = following(await page.api.get_all("/follows"), "user", str(person["id"]))
    if follow_id is not None:
        try:
            await page.api.delete(f"/follows/{follow_id}")
        except ApiError as exc:
            if exc.status != 404:  # already gone
                raise
    return redirect(f"/people/@{person['handle']}", done="unfollowed")
