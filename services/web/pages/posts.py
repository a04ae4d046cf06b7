"""Posts: the flow (write, read), a post's thread with replies and thanks, and tag pages.

Everything is read and changed through the public API as the person: a post they may
not read is a 404 from the API, so it is a 404 here too, and lists hold only what the
API lets them read.
"""

import asyncio
from typing import Any
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from services.web.api import ApiError
from services.web.pages.base import DONE_MESSAGES, Page, PageDep, redirect
from shared.hashtags import TAG_PATTERN

router = APIRouter()

PAGE_SIZE = 20
TAG_PAGE_SIZE = 10
NESTED_SHOWN = 10
TAGS_LISTED = 50
POST_BODY_MAX = 5000
TITLE_MAX = 200

DONE_MESSAGES.update(
    {
        "posted": "Posted.",
        "replied": "Your reply is posted.",
        "post-edited": "Your post is updated.",
        "post-deleted": "Your post is deleted.",
        "thanked": "You thanked the author.",
        "unthanked": "You took back your thanks.",
        "followed-tag": "You follow this tag: what carries it appears in your feed and digest.",
        "unfollowed-tag": "You no longer follow this tag.",
    }
)


async def group_names(page: Page) -> dict[str, str]:
    """Names of the groups the person can see, by id (to label posts)."""
    groups: list[dict[str, Any]] = await page.api.get_all("/groups")
    return {group["id"]: group["name"] for group in groups}


def field_errors(exc: ApiError) -> dict[str, str]:
    """The API's complaints by field, in words (without pydantic's "Value error, ")."""
    return {
        name: message.removeprefix("Value error, ") for name, message in exc.field_errors.items()
    }


def refusal(exc: ApiError) -> str:
    """What to say above a refused form: the fields speak for themselves when named."""
    return "Please check the fields marked below." if exc.field_errors else exc.detail


def text_of(form: Any, name: str, limit: int) -> str:
    """A form's text field, cut at a length the API would refuse anyway."""
    return str(form.get(name, ""))[: limit + 1]


# --- the flow -------------------------------------------------------------------------


async def render_flow(
    page: Page,
    *,
    cursor: str | None = None,
    tag: str | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    posts, groups = await asyncio.gather(
        page.api.get("/posts", kind="post", tag=tag, cursor=cursor, limit=PAGE_SIZE),
        page.api.get_all("/groups"),
    )
    return await page.render(
        "posts/flow.html",
        status=status,
        title="Posts",
        posts=posts,
        groups={group["id"]: group["name"] for group in groups},
        member_groups=[group for group in groups if group.get("is_member")],
        cursor=cursor,
        tag=tag,
        values=values or {},
        errors=errors or {},
        error=error,
    )


@router.get("/posts")
async def flow(page: PageDep, cursor: str | None = None, tag: str | None = None) -> Response:
    page.require_person()
    return await render_flow(page, cursor=cursor, tag=tag_name(tag) if tag else None)


@router.post("/posts")
async def write_post(page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    values = {
        "body": text_of(form, "body", POST_BODY_MAX),
        "group_id": str(form.get("group_id", "")),
    }
    try:
        created = await page.api.post(
            "/posts", {"body": values["body"], "group_id": values["group_id"] or None}
        )
    except ApiError as exc:
        return await render_flow(
            page,
            values=values,
            errors=field_errors(exc),
            error=refusal(exc),
            status=exc.status if exc.status in (403, 404, 422) else 400,
        )
    return redirect(f"/posts/{created['id']}", done="posted")


# --- a post and its thread ------------------------------------------------------------


async def render_post(
    page: Page,
    post_id: UUID,
    *,
    cursor: str | None = None,
    reply: str = "",
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    person = page.require_person()
    post, replies, names = await asyncio.gather(
        page.api.get(f"/posts/{post_id}"),
        page.api.get(f"/posts/{post_id}/replies", cursor=cursor, limit=PAGE_SIZE),
        group_names(page),
    )
    # One level deeper in the same breath: replies to the replies shown (the feed and
    # notifications link a reply at its thread's page); deeper ones are a click away.
    answered = [item["id"] for item in replies["items"] if item.get("reply_count")]
    parent, *deeper = await asyncio.gather(
        read_or_none(page, f"/posts/{post['parent_id']}" if post.get("parent_id") else None),
        *(
            read_or_none(page, f"/posts/{item_id}/replies", limit=NESTED_SHOWN)
            for item_id in answered
        ),
    )
    return await page.render(
        "posts/post.html",
        status=status,
        title=f"Post by @{post['author_handle']}",
        post=post,
        parent=parent,
        replies=replies,
        nested={item_id: found for item_id, found in zip(answered, deeper, strict=True) if found},
        groups=names,
        mine=post["author_id"] == person.id,
        cursor=cursor,
        reply=reply,
        errors=errors or {},
        error=error,
    )


async def read_or_none(page: Page, path: str | None, **params: Any) -> Any:
    """What the API answers, or None if there is nothing to read (deleted meanwhile)."""
    if path is None:
        return None
    try:
        return await page.api.get(path, **params)
    except ApiError as exc:
        if exc.status != 404:
            raise
        return None


@router.get("/posts/{post_id}")
async def read_post(post_id: UUID, page: PageDep, cursor: str | None = None) -> Response:
    return await render_post(page, post_id, cursor=cursor)


@router.post("/posts/{post_id}/replies")
async def write_reply(post_id: UUID, page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    body = text_of(form, "body", POST_BODY_MAX)
    try:
        created = await page.api.post("/posts", {"body": body, "parent_id": str(post_id)})
    except ApiError as exc:
        if exc.status == 404:
            raise
        return await render_post(
            page,
            post_id,
            reply=body,
            errors=field_errors(exc),
            error=refusal(exc),
            status=exc.status if exc.status in (400, 403, 422) else 400,
        )
    return redirect(f"/posts/{created['parent_id'] or post_id}", done="replied")


@router.post("/posts/{post_id}/thanks")
async def thank(post_id: UUID, page: PageDep) -> Response:
    """Thanks given, or taken back (the form says which: the page knows the state)."""
    page.require_person()
    form = await page.form()
    back = f"/posts/{post_id}"
    try:
        if form.get("thanked") == "yes":
            await page.api.delete(f"/posts/{post_id}/reactions/thanks")
            return redirect(back, done="unthanked")
        await page.api.post(f"/posts/{post_id}/reactions", {"kind": "thanks"})
    except ApiError as exc:
        if exc.status == 404:
            raise
        return await render_post(page, post_id, error=exc.detail, status=400)
    return redirect(back, done="thanked")


async def render_edit(
    page: Page,
    post: dict[str, Any],
    etag: str,
    *,
    body: str,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return await page.render(
        "posts/edit.html",
        status=status,
        title="Edit your post",
        post=post,
        etag=etag,
        body=body,
        errors=errors or {},
        error=error,
    )


@router.get("/posts/{post_id}/edit")
async def edit_post_page(post_id: UUID, page: PageDep) -> Response:
    page.require_person()
    post, etag = await page.api.get_with_etag(f"/posts/{post_id}")
    return await render_edit(page, post, etag or "", body=post["body"])


@router.post("/posts/{post_id}/edit")
async def edit_post(post_id: UUID, page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    body = text_of(form, "body", POST_BODY_MAX)
    etag = str(form.get("etag", ""))[:200] or None
    try:
        await page.api.patch(f"/posts/{post_id}", {"body": body}, etag=etag)
    except ApiError as exc:
        if exc.status == 404:
            raise
        current, fresh = await page.api.get_with_etag(f"/posts/{post_id}")
        if exc.status == 412:
            # Kept the person's text; the form now carries the newer version's ETag.
            message = (
                "This post changed meanwhile (in another tab or window). Its current text "
                "is shown below yours; save again to replace it with yours."
            )
            return await render_edit(
                page, current, fresh or "", body=body, error=message, status=409
            )
        return await render_edit(
            page,
            current,
            etag or "",
            body=body,
            errors=field_errors(exc),
            error=refusal(exc),
            status=exc.status if exc.status in (400, 403, 422) else 400,
        )
    return redirect(f"/posts/{post_id}", done="post-edited")


@router.post("/posts/{post_id}/delete")
async def delete_post(post_id: UUID, page: PageDep) -> Response:
    page.require_person()
    await page.form()
    await page.api.delete(f"/posts/{post_id}")
    return redirect("/posts", done="post-deleted")


@router.get("/posts/{post_id}/formalize")
async def formalize_page(post_id: UUID, page: PageDep) -> Response:
    page.require_person()
    post = await page.api.get(f"/posts/{post_id}")
    return await page.render(
        "posts/formalize.html",
        title="Formalize into an article",
        post=post,
        values={"title": ""},
        errors={},
        error=None,
    )


@router.post("/posts/{post_id}/formalize")
async def formalize(post_id: UUID, page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    title = text_of(form, "title", TITLE_MAX)
    try:
        article = await page.api.post(f"/posts/{post_id}/formalize", {"title": title})
    except ApiError as exc:
        if exc.status == 404:
            raise
        existing = exc.problem.get("article_id")
        if exc.status == 409 and isinstance(existing, str):
            return redirect(f"/articles/{quote(existing, safe='')}")
        post = await page.api.get(f"/posts/{post_id}")
        return await page.render(
            "posts/formalize.html",
            status=exc.status if exc.status in (400, 403, 422) else 400,
            title="Formalize into an article",
            post=post,
            values={"title": title},
            errors=field_errors(exc),
            error=refusal(exc),
        )
    return redirect(f"/articles/{article['id']}", done="formalized")


# --- tags -----------------------------------------------------------------------------


def tag_name(tag: str) -> str:
    """The tag as the API keeps it (lower case, no '#'); no such tag can exist otherwise."""
    name = tag.strip().lower().removeprefix("#")
    if not TAG_PATTERN.match(name):
        raise HTTPException(status_code=404)
    return name


def tag_follow(follows: list[dict[str, Any]], tag: str) -> dict[str, Any] | None:
    return next(
        (item for item in follows if item["target_type"] == "tag" and item["target"] == tag),
        None,
    )


@router.get("/tags")
async def tags(page: PageDep, prefix: str = "") -> Response:
    """The most used tags the person can see (optionally those starting with a prefix)."""
    page.require_person()
    start = prefix.strip().lower().removeprefix("#")[:50]
    listed, follows = await asyncio.gather(
        page.api.get("/tags", prefix=start, limit=TAGS_LISTED), page.api.get_all("/follows")
    )
    followed = {item["target"] for item in follows if item["target_type"] == "tag"}
    return await page.render(
        "posts/tags.html", title="Tags", tags=listed["items"], followed=followed, prefix=start
    )


@router.get("/tags/{tag}")
async def tag_page(tag: str, page: PageDep) -> Response:
    page.require_person()
    name = tag_name(tag)
    posts, questions, articles, follows, names = await asyncio.gather(
        page.api.get("/posts", tag=name, kind="post", limit=TAG_PAGE_SIZE),
        page.api.get("/questions", tag=name, limit=TAG_PAGE_SIZE),
        page.api.get("/articles", tag=name, limit=TAG_PAGE_SIZE),
        page.api.get_all("/follows"),
        group_names(page),
    )
    return await page.render(
        "posts/tag.html",
        title=f"#{name}",
        tag=name,
        posts=posts,
        questions=questions,
        articles=articles,
        follow=tag_follow(follows, name),
        groups=names,
    )


@router.post("/tags/{tag}/follow")
async def follow_tag(tag: str, page: PageDep) -> Response:
    page.require_person()
    await page.form()
    name = tag_name(tag)
    try:
        await page.api.post("/follows", {"target_type": "tag", "target": name})
    except ApiError as exc:
        if exc.status != 409:  # already following: what was asked is so
            raise
    return redirect(f"/tags/{quote(name, safe='')}", done="followed-tag")


@router.post("/tags/{tag}/unfollow")
async def unfollow_tag(tag: str, page: PageDep) -> Response:
    page.require_person()
    await page.form()
    name = tag_name(tag)
    follow = tag_follow(await page.api.get_all("/follows"), name)
    if follow is not None:
        try:
            await page.api.delete(f"/follows/{follow['id']}")
        except ApiError as exc:
            if exc.status != 404:  # unfollowed meanwhile
                raise
    return redirect(f"/tags/{quote(name, safe='')}", done="unfollowed-tag")
