"""What the page's script asks while someone types: @people and #tags to complete."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.web.pages.base import PageDep

router = APIRouter()


@router.get("/autocomplete")
async def autocomplete(
    page: PageDep,
    kind: Literal["people", "tags"],
    prefix: Annotated[str, Query(min_length=1, max_length=50)],
) -> JSONResponse:
    page.require_person()
    items: list[dict[str, Any]]
    if kind == "people":
        people = await page.api.get("/users", q=prefix, limit=8)
        items = [
            {"value": person["handle"], "label": f"{person['display_name']} (@{person['handle']})"}
            for person in people["items"]
        ]
    else:
        tags = await page.api.get("/tags", prefix=prefix, limit=8)
        items = [
            {"value": tag["tag"], "label": f"#{tag['tag']} ({tag['count']})"}
            for tag in tags["items"]
        ]
    return JSONResponse({"items": items}, headers={"cache-control": "no-store"})
