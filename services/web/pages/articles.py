"""Articles: list, write, read, edit; their revisions, a diff between two, and restore.

Edits and restores send the ETag the page read as If-Match: if the article changed
meanwhile, the person is told so plainly and shown where it stands now.
"""

import asyncio
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from services.web.api import ApiError
from services.web.diff import line_diff, tag_changes
from services.web.pages.base import DONE_MESSAGES, Page, PageDep, parse_tags, redirect
from services.web.pages.posts import field_errors, group_names, refusal, tag_name, text_of

router = APIRouter()

PAGE_SIZE = 20
REVISIONS_PAGE_SIZE = 50
ARTICLE_BODY_MAX = 100_000
TITLE_MAX = 200
TAGS_MAX = 10
CHANGED_MEANWHILE = (
    "This article changed meanwhile (someone saved a newer revision), so nothing was "
    "saved. Your text is still in the form and the current version is shown below it: "
    "save again to replace it with yours."
)
RESTORE_CHANGED_MEANWHILE = (
    "This article changed meanwhile (someone saved a newer revision), so nothing was "
    "restored. Compare this revision with the current one, then restore again if you "
    "still want to."
)

DONE_MESSAGES.update(
    {
        "article-created": "Your article is published.",
        "article-edited": "Saved as a new revision.",
        "restored": "Restored: the old revision is saved as the newest one.",
        "formalized": "The thread is now an article. Edit it to give it shape.",
        "article-deleted": "The article is deleted.",
    }
)


def article_values(form: Any) -> dict[str, str]:
    return {
        "title": text_of(form, "title", TITLE_MAX),
        "body": text_of(form, "body", ARTICLE_BODY_MAX),
        "tags": text_of(form, "tags", 600),
        "group_id": str(form.get("group_id", "")),
    }


def tag_errors(errors: dict[str, str]) -> dict[str, str]:
    """A tag's validation error is reported at its index: show it at the tags field."""
    shown = dict(errors)
    for name in list(shown):
        if name.isdigit():
            shown.setdefault("tags", "Each tag is letters, digits, '-' or '_', at most 50.")
            del shown[name]
    return shown


# --- list and write -------------------------------------------------------------------


@router.get("/articles")
async def list_articles(
    page: PageDep, cursor: str | None = None, tag: str | None = None
) -> Response:
    page.require_person()
    name = tag_name(tag) if tag else None
    articles, names = await asyncio.gather(
        page.api.get("/articles", tag=name, cursor=cursor, limit=PAGE_SIZE), group_names(page)
    )
    return await page.render(
        "articles/list.html", title="Articles", articles=articles, groups=names, tag=name
    )


async def render_new(
    page: Page,
    values: dict[str, str],
    *,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    groups: list[dict[str, Any]] = await page.api.get_all("/groups")
    return await page.render(
        "articles/new.html",
        status=status,
        title="Write an article",
        values=values,
        member_groups=[group for group in groups if group.get("is_member")],
        errors=errors or {},
        error=error,
    )


@router.get("/articles/new")
async def new_article_page(page: PageDep) -> Response:
    page.require_person()
    return await render_new(page, {})


@router.post("/articles/new")
async def new_article(page: PageDep) -> Response:
    page.require_person()
    values = article_values(await page.form())
    request = {
        "title": values["title"],
        "body": values["body"],
        "tags": parse_tags(values["tags"])[: TAGS_MAX + 1],
        "group_id": values["group_id"] or None,
    }
    try:
        article = await page.api.post("/articles", request)
    except ApiError as exc:
        return await render_new(
            page,
            values,
            errors=tag_errors(field_errors(exc)),
            error=refusal(exc),
            status=exc.status if exc.status in (400, 403, 404, 422) else 400,
        )
    return redirect(f"/articles/{article['id']}", done="article-created")


# --- read and edit --------------------------------------------------------------------


@router.get("/articles/{article_id}")
async def read_article(article_id: UUID, page: PageDep) -> Response:
    person = page.require_person()
    (article, _etag), names = await asyncio.gather(
        page.api.get_with_etag(f"/articles/{article_id}"), group_names(page)
    )
    return await page.render(
        "articles/article.html",
        title=article["title"],
        article=article,
        groups=names,
        mine=article["author_id"] == person.id,
    )


async def render_edit(
    page: Page,
    article: dict[str, Any],
    etag: str,
    values: dict[str, str],
    *,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return await page.render(
        "articles/edit.html",
        status=status,
        title=f"Edit: {article['title']}",
        article=article,
        etag=etag,
        values=values,
        errors=errors or {},
        error=error,
        changed=values.get("body") != article["body"] or values.get("title") != article["title"],
    )


@router.get("/articles/{article_id}/edit")
async def edit_article_page(article_id: UUID, page: PageDep) -> Response:
    page.require_person()
    article, etag = await page.api.get_with_etag(f"/articles/{article_id}")
    values = {
        "title": article["title"],
        "body": article["body"],
        "tags": " ".join(article["tags"]),
    }
    return await render_edit(page, article, etag or "", values)


@router.post("/articles/{article_id}/edit")
async def edit_article(article_id: UUID, page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    values = article_values(form)
    etag = str(form.get("etag", ""))[:200] or None
    change = {
        "title": values["title"],
        "body": values["body"],
        "tags": parse_tags(values["tags"])[: TAGS_MAX + 1],
    }
    try:
        await page.api.patch(f"/articles/{article_id}", change, etag=etag)
    except ApiError as exc:
        if exc.status == 404:
            raise
        current, fresh = await page.api.get_with_etag(f"/articles/{article_id}")
        if exc.status == 412:
            # The person's text is kept; saving again (with the new ETag) overwrites.
            return await render_edit(
                page, current, fresh or "", values, error=CHANGED_MEANWHILE, status=409
            )
        return await render_edit(
            page,
            current,
            etag or "",
            values,
            errors=tag_errors(field_errors(exc)),
            error=refusal(exc),
            status=exc.status if exc.status in (400, 403, 422) else 400,
        )
    return redirect(f"/articles/{article_id}", done="article-edited")


@router.post("/articles/{article_id}/delete")
async def delete_article(article_id: UUID, page: PageDep) -> Response:
    page.require_person()
    await page.form()
    await page.api.delete(f"/articles/{article_id}")
    return redirect("/articles", done="article-deleted")


# --- revisions, diff and restore ------------------------------------------------------


@router.get("/articles/{article_id}/revisions")
async def revisions(article_id: UUID, page: PageDep, cursor: str | None = None) -> Response:
    page.require_person()
    article, listed = await asyncio.gather(
        page.api.get(f"/articles/{article_id}"),
        page.api.get(f"/articles/{article_id}/revisions", cursor=cursor, limit=REVISIONS_PAGE_SIZE),
    )
    return await page.render(
        "articles/revisions.html",
        title=f"Revisions: {article['title']}",
        article=article,
        revisions=listed,
    )


async def render_revision(
    page: Page,
    article_id: UUID,
    number: int,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    person = page.require_person()
    (article, etag), revision = await asyncio.gather(
        page.api.get_with_etag(f"/articles/{article_id}"),
        page.api.get(f"/articles/{article_id}/revisions/{number}"),
    )
    return await page.render(
        "articles/revision.html",
        status=status,
        title=f"Revision {number}: {revision['title']}",
        article=article,
        etag=etag or "",
        revision=revision,
        mine=article["author_id"] == person.id,
        error=error,
    )


Number = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/articles/{article_id}/revisions/{number}")
async def revision(article_id: UUID, number: Number, page: PageDep) -> Response:
    return await render_revision(page, article_id, number)


@router.post("/articles/{article_id}/revisions/{number}/restore")
async def restore(article_id: UUID, number: Number, page: PageDep) -> Response:
    """The article back to an old revision's title, body and tags (a new revision)."""
    page.require_person()
    form = await page.form()
    etag = str(form.get("etag", ""))[:200] or None
    old = await page.api.get(f"/articles/{article_id}/revisions/{number}")
    change = {"title": old["title"], "body": old["body"], "tags": old["tags"]}
    try:
        await page.api.patch(f"/articles/{article_id}", change, etag=etag)
    except ApiError as exc:
        if exc.status == 404:
            raise
        message = RESTORE_CHANGED_MEANWHILE if exc.status == 412 else exc.detail
        return await render_revision(
            page, article_id, number, error=message, status=409 if exc.status == 412 else 400
        )
    return redirect(f"/articles/{article_id}", done="restored")


@router.get("/articles/{article_id}/diff")
async def diff(
    article_id: UUID,
    page: PageDep,
    older: Annotated[int | None, Query(alias="from", ge=1, le=2**31 - 1)] = None,
    newer: Annotated[int | None, Query(alias="to", ge=1, le=2**31 - 1)] = None,
) -> Response:
    """What changed from one revision to another (by default, in the latest revision)."""
    page.require_person()
    if older is None or newer is None:  # the latest change: the article says which it is
        latest = (await page.api.get(f"/articles/{article_id}"))["version"]
        newer = newer or latest
        older = older or max(newer - 1, 1)
    article, before, after = await asyncio.gather(
        page.api.get(f"/articles/{article_id}"),
        page.api.get(f"/articles/{article_id}/revisions/{older}"),
        page.api.get(f"/articles/{article_id}/revisions/{newer}"),
    )
    removed_tags, added_tags = tag_changes(before["tags"], after["tags"])
    return await page.render(
        "articles/diff.html",
        title=f"Changes from revision {older} to {newer}: {article['title']}",
        article=article,
        before=before,
        after=after,
        diff=line_diff(before["body"], after["body"]),
        removed_tags=removed_tags,
        added_tags=added_tags,
    )
