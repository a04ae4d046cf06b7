"""The home page: the feed of what the people, tags and groups one follows produced."""

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from services.web.api import ApiError
from services.web.pages.base import Page, PageDep

router = APIRouter()
# The "You follow" list names at most this many (one API read each for people and groups).
FOLLOWS_SHOWN = 20


async def describe_follow(page: Page, follow: dict[str, Any]) -> dict[str, str]:
    """A follow as a link: a tag's page, a person's name, a group's name."""
    kind, target = follow["target_type"], str(follow["target"])
    if kind == "tag":
        return {"label": f"#{target}", "href": f"/tags/{target}"}
    try:
        if kind == "user":
            person = await page.api.get(f"/users/{target}")
            return {"label": person["display_name"], "href": f"/people/@{person['handle']}"}
        group = await page.api.get(f"/groups/{target}")
        return {"label": group["name"], "href": f"/groups/{target}"}
    except ApiError:
        return {"label": "someone or something no longer visible to you", "href": ""}


@router.get("/")
async def home(page: PageDep, cursor: str | None = None) -> Response:
    if page.person is None:
        return await page.render("home/welcome.html", title="Knowflow")
    feed, follows = await asyncio.gather(
        page.api.get("/feed", cursor=cursor, limit=20),
        page.api.get("/follows", limit=FOLLOWS_SHOWN),
    )
    described = await asyncio.gather(
        *(describe_follow(page, follow) for follow in follows["items"])
    )
    return await page.render(
        "home/feed.html",
        title="Home",
        feed=feed,
        follows=described,
        cursor=cursor,
    )
