"""Finding things and people: search across flow and stock, and "who knows about X?".

The API's snippets are the one HTML field it has: escaped text with matches in
`<mark>…</mark>`. They never reach the page as HTML: `snippet_parts` splits them at the
markers into plain text (unescaped) and a flag, and the template escapes each part again
and wraps the marked ones in its own `<mark>`.
"""

import asyncio
import html
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, get_args
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import Response

from services.web.api import ApiError
from services.web.pages.base import Page, PageDep, redirect
from services.web.rendering import item_url
from shared.events.contracts import ContentKind

router = APIRouter()

KINDS: tuple[str, ...] = get_args(ContentKind)
KIND_LABELS = {
    "post": "Posts",
    "reply": "Replies",
    "article": "Articles",
    "question": "Questions",
    "answer": "Answers",
    "comment": "Comments",
}
MAX_QUERY_CHARS = 500
PAGE_SIZE = 20
MAX_TAG_CHARS = 50
_MARKERS = re.compile(r"(<mark>|</mark>)")


def snippet_parts(snippet: str | None) -> list[tuple[str, bool]]:
    """The snippet as (text, highlighted) parts: plain text, for the template to escape."""
    parts: list[tuple[str, bool]] = []
    marked = False
    for piece in _MARKERS.split(snippet or ""):
        if piece == "<mark>":
            marked = True
        elif piece == "</mark>":
            marked = False
        elif piece:
            parts.append((html.unescape(piece), marked))
    return parts


@dataclass
class SearchForm:
    """The search page's controls as typed, and what is wrong with them."""

    q: str = ""
    kind: str = ""
    tag: str = ""
    group_id: str = ""
    since: str = ""
    until: str = ""

    def checked(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The API's query parameters, and errors by field for what cannot be asked."""
        errors: dict[str, str] = {}
        params: dict[str, Any] = {"q": self.q}
        if len(self.q) > MAX_QUERY_CHARS:
            errors["q"] = f"At most {MAX_QUERY_CHARS} characters."
        if self.kind:
            if self.kind in KINDS:
                params["kind"] = self.kind
            else:
                errors["kind"] = "Choose one of the kinds listed."
        tag = self.tag.removeprefix("#")
        if tag:
            if len(tag) > MAX_TAG_CHARS:
                errors["tag"] = f"A tag has at most {MAX_TAG_CHARS} characters."
            params["tag"] = tag
        if self.group_id:
            try:
                params["group_id"] = str(UUID(self.group_id))
            except ValueError:
                errors["group_id"] = "Choose one of the groups listed."
        days: dict[str, date] = {}
        for name in ("since", "until"):
            value = getattr(self, name)
            if not value:
                continue
            try:
                days[name] = date.fromisoformat(value)
            except ValueError:
                errors[name] = "A date, such as 2026-01-31."
        if "since" in days:
            params["since"] = f"{days['since'].isoformat()}T00:00:00Z"
        if "until" in days:  # the whole day named is included
            params["until"] = f"{(days['until'] + timedelta(days=1)).isoformat()}T00:00:00Z"
        if "since" in days and "until" in days and days["since"] > days["until"]:
            errors["until"] = "The end comes on or after the start."
        return params, errors

    @property
    def filtered(self) -> bool:
        return any((self.kind, self.tag, self.group_id, self.since, self.until))

    def query(self) -> dict[str, str]:
        """The filters as they go in a link (the pager's)."""
        return {
            "q": self.q,
            "kind": self.kind,
            "tag": self.tag,
            "group_id": self.group_id,
            "since": self.since,
            "until": self.until,
        }


def _text(value: str | None, limit: int = 1000) -> str:
    return (value or "").strip()[:limit]


Found = tuple[dict[str, Any] | None, str | None, dict[str, str]]


async def _search(page: Page, params: dict[str, Any], cursor: str | None) -> Found:
    """One page of results, or the API's refusal (detail, field errors) to show."""
    try:
        return await page.api.get("/search", cursor=cursor, limit=PAGE_SIZE, **params), None, {}
    except ApiError as exc:
        if exc.status >= 500 or exc.status in (401, 403):
            raise
        return None, exc.detail, exc.field_errors


async def _nothing() -> Found:
    return None, None, {}


@router.get("/search")
async def search(
    page: PageDep,
    q: str | None = None,
    kind: str | None = None,
    tag: str | None = None,
    group_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
) -> Response:
    page.require_person()
    form = SearchForm(
        q=_text(q, MAX_QUERY_CHARS + 1),
        kind=_text(kind, 20),
        tag=_text(tag, MAX_TAG_CHARS + 2),
        group_id=_text(group_id, 40),
        since=_text(since, 20),
        until=_text(until, 20),
    )
    params, errors = form.checked()
    asked = bool(form.q) and not errors
    groups, (results, error, refused) = await asyncio.gather(
        page.api.get_all("/groups"), _search(page, params, cursor) if asked else _nothing()
    )
    errors |= refused
    group_names = {str(group["id"]): group["name"] for group in groups}
    if results is not None:
        for item in results["items"]:
            item["url"] = item_url(item["kind"], item["id"])
            item["parts"] = snippet_parts(item.get("snippet"))
            item["group_name"] = group_names.get(str(item.get("group_id")))
    return await page.render(
        "search/search.html",
        title=f"Search: {form.q}" if form.q else "Search",
        form=form,
        kinds=KIND_LABELS,
        groups=groups,
        results=results,
        error=error or ("Check the filters marked below." if errors else None),
        errors=errors,
        cursor=cursor,
    )


@router.get("/experts")
async def experts(page: PageDep, topic: str | None = None) -> Response:
    """Who knows about a topic: each person's score, why, and the items that show it."""
    page.require_person()
    topic = _text(topic, MAX_QUERY_CHARS + 1)
    found: dict[str, Any] | None = None
    error = None
    if len(topic) > MAX_QUERY_CHARS:
        error = f"A topic has at most {MAX_QUERY_CHARS} characters."
    elif topic:
        try:
            found = await page.api.get("/experts", topic=topic, limit=10)
        except ApiError as exc:
            if exc.status >= 500 or exc.status in (401, 403):
                raise
            error = exc.detail
    if found is not None:
        for expert in found["experts"]:
            for item in expert["evidence"]:
                item["url"] = item_url(item["kind"], item["content_id"], item.get("thread_id"))
                item["parts"] = snippet_parts(item.get("snippet"))
    return await page.render(
        "search/experts.html",
        title=f"Who knows about {topic}" if topic and found is not None else "Who knows",
        topic=topic,
        found=found,
        error=error,
    )


@router.get("/answers/{answer_id}")
async def answer(answer_id: UUID, page: PageDep) -> Response:
    """An answer is shown on its question's page, at the answer."""
    page.require_person()
    found = await page.api.get(f"/answers/{answer_id}")
    return redirect(f"/questions/{found['question_id']}#answer-{answer_id}")
