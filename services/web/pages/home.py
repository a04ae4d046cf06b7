"""The home page: the feed of what the people, tags and groups one follows produced."""

from fastapi import APIRouter
from fastapi.responses import Response

from services.web.pages.base import PageDep

router = APIRouter()


@router.get("/")
async def home(page: PageDep, cursor: str | None = None) -> Response:
    if page.person is None:
        return await page.render("home/welcome.html", title="Knowflow")
    feed = await page.api.get("/feed", cursor=cursor, limit=20)
    follows = await page.api.get("/follows")
    return await page.render(
        "home/feed.html", title="Home", feed=feed, follows=follows, cursor=cursor
    )
