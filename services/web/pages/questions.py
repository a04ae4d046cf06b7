"""Questions: the list, asking (with similar questions and likely experts as one types),
and a question's page (answers, comments, votes, acceptance, routing, formalizing).

Every form posts here, calls the public API as the person, and redirects back to the
question (post/redirect/get); a refusal shows the question page again with the API's
problem next to the form it came from.
"""

import asyncio
import contextlib
import html
import re
from typing import Any
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from services.web.api import ApiError
from services.web.pages.base import DONE_MESSAGES, Page, PageDep, parse_tags, redirect

router = APIRouter()

# Tags as people type them: separated by spaces or commas, with or without '#'.
# What posts accepts as a tag (its published pattern); lookups drop the rest quietly.
TAG_PATTERN = re.compile(r"^#?[A-Za-z0-9][A-Za-z0-9_-]{0,49}$")
MARK = re.compile(r"</?mark>")
# Bounds of the search API's lookups (the draft is cut, not refused, while typing).
SIMILAR_TITLE_MAX = 300
SIMILAR_BODY_MAX = 30_000
EXPERT_QUERY_MAX = 4000
EXPERT_TAGS_MAX = 10
LOOKUP_SIZE = 5
ANSWERS_PER_PAGE = 50
# The orders the API lists questions in, as the list's select names them.
SORTS = {"newest": "Newest", "activity": "Recent activity", "votes": "Most votes"}
# Where an item of each kind is shown (an answer or comment has no page of its own).
CONTENT_PAGES = {"question": "/questions", "post": "/posts", "article": "/articles"}
# An edit that crossed another: the form now holds the current version's ETag.
CHANGED_MEANWHILE = (
    "Someone changed this while you were editing it. Your text is kept below: "
    "open the page in another tab to see theirs, and save again to replace it."
)
# Messages after a redirect (`?done=question-…`), shown by every page's layout.
DONE_MESSAGES.update(
    {
        f"question-{name}": text
        for name, text in {
            "asked": "Your question is posted. People who know about it are being asked.",
            "answered": "Your answer is posted.",
            "commented": "Your comment is posted.",
            "accepted": "Answer accepted.",
            "unaccepted": "No answer is accepted now.",
            "voted": "Vote recorded.",
            "edited": "Saved.",
            "deleted": "Deleted.",
        }.items()
    }
)


def form_errors(exc: ApiError) -> dict[str, str]:
    """A refusal's messages by the form field they belong to (a tag's error is `tags`'s)."""
    errors: dict[str, str] = {}
    for error in exc.problem.get("errors", []) or []:
        location = [str(part) for part in error.get("loc") or []]
        if location[:1] in (["body"], ["query"], ["path"]):
            location = location[1:]  # where in the request, not which field
        names = [part for part in location if not part.isdigit()]
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        errors.setdefault(names[0] if names else "", message)
    return errors


def refusal(exc: ApiError) -> str:
    """What to say above a refused form: the fields say what is wrong with them."""
    return "Check the fields marked below." if form_errors(exc) else exc.detail


def plain(snippet: str) -> str:
    """Search's snippet (escaped text with <mark>) as plain text, for textContent."""
    return html.unescape(MARK.sub("", snippet))


def content_url(kind: str, content_id: str) -> str | None:
    base = CONTENT_PAGES.get(kind)
    return f"{base}/{content_id}" if base else None


def group_names(groups: list[dict[str, Any]]) -> dict[str, str]:
    return {str(group["id"]): str(group["name"]) for group in groups}


# --- the list ---------------------------------------------------------------------------


@router.get("/questions")
async def list_questions(
    page: PageDep,
    cursor: str | None = None,
    tag: str | None = None,
    group_id: str | None = None,
    unanswered: bool = False,
    sort: str = "newest",
) -> Response:
    page.require_person()
    sort = sort if sort in SORTS else "newest"
    tag = (tag or "").strip().lstrip("#")[:51] or None
    group_id = (group_id or "").strip() or None
    error = None
    listed: dict[str, Any] = {"items": [], "next_cursor": None}
    groups: list[dict[str, Any]]
    try:
        listed, groups = await asyncio.gather(
            page.api.get(
                "/questions",
                cursor=cursor,
                limit=20,
                tag=tag,
                group_id=group_id,
                unanswered=True if unanswered else None,
                sort=sort,
            ),
            page.api.get_all("/groups"),
        )
    except ApiError as exc:
        if exc.status not in (400, 404, 422):
            raise
        error = exc.detail
        groups = await page.api.get_all("/groups")
    return await page.render(
        "questions/list.html",
        title="Questions",
        questions=listed,
        groups=[group for group in groups if group.get("is_member")],
        names=group_names(groups),
        filters={
            "tag": tag or "",
            "group_id": group_id or "",
            "unanswered": unanswered,
            "sort": sort,
        },
        sorts=SORTS,
        error=error,
    )


# --- asking ---------------------------------------------------------------------------


async def render_ask(
    page: Page,
    *,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    groups = await page.api.get_all("/groups")
    return await page.render(
        "questions/ask.html",
        status=status,
        title="Ask a question",
        values=values,
        errors=errors or {},
        error=error,
        groups=[group for group in groups if group.get("is_member")],
    )


@router.get("/questions/ask")
async def ask_page(page: PageDep, group_id: str | None = None) -> Response:
    page.require_person()
    values = {"title": "", "body": "", "tags": "", "group_id": (group_id or "")[:36]}
    return await render_ask(page, values=values)


@router.post("/questions/ask")
async def ask(page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    values = {name: str(form.get(name, "")) for name in ("title", "body", "tags", "group_id")}
    values["title"] = values["title"].strip()
    request: dict[str, Any] = {
        "title": values["title"],
        "body": values["body"],
        "tags": parse_tags(values["tags"]),
    }
    if values["group_id"]:
        request["group_id"] = values["group_id"]
    try:
        question = await page.api.post("/questions", request)
    except ApiError as exc:
        if exc.status >= 500:
            raise
        return await render_ask(
            page,
            values=values,
            errors=form_errors(exc),
            error=refusal(exc),
            status=exc.status if exc.status in (400, 403, 404, 409, 422) else 400,
        )
    return redirect(f"/questions/{question['id']}", done="question-asked")


def lookup_answer(heading: str, empty: str, items: list[dict[str, Any]]) -> JSONResponse:
    """What `data-lookup` renders: a heading (or the empty text) and a list of links."""
    return JSONResponse(
        {"heading": heading, "empty": empty, "items": items},
        headers={"cache-control": "no-store"},
    )


@router.get("/questions/similar.json")
async def similar(
    page: PageDep,
    title: str = "",
    body: str = "",
    tags: str = "",
    group_id: str = "",
) -> JSONResponse:
    """Questions like the one being written (as the person may see them), best first."""
    page.require_person()
    heading, empty = "Similar questions", "No similar questions yet."
    title = title.strip()[:SIMILAR_TITLE_MAX]
    if not title:
        return lookup_answer(heading, empty, [])
    draft: dict[str, Any] = {
        "title": title,
        "body": body[:SIMILAR_BODY_MAX] or None,
        "tags": [tag for tag in parse_tags(tags) if TAG_PATTERN.match(tag)][:50],
        "limit": LOOKUP_SIZE,
    }
    if group_id:
        with contextlib.suppress(ValueError):  # a tampered field: look in every group
            draft["group_id"] = str(UUID(group_id))
    try:
        found = await page.api.post("/questions/similar", draft)
    except ApiError as exc:
        if exc.status >= 500 or exc.status == 401:
            raise
        return lookup_answer(heading, empty, [])
    items = []
    for item in found["items"]:
        facts = ["accepted answer" if item["has_accepted_answer"] else "no accepted answer"]
        if item.get("tags"):
            facts.append(" ".join(f"#{tag}" for tag in item["tags"]))
        snippet = plain(item.get("snippet") or "")
        items.append(
            {
                "text": item.get("title") or snippet[:80] or "A question",
                "href": f"/questions/{item['question_id']}",
                "detail": " · ".join(facts) + (f" — {snippet}" if snippet else ""),
            }
        )
    return lookup_answer(heading, empty, items)


@router.get("/questions/experts.json")
async def experts(page: PageDep, title: str = "", body: str = "", tags: str = "") -> JSONResponse:
    """People likely to answer the question being written, each with why."""
    person = page.require_person()
    heading, empty = "People who may know", "Nobody stands out yet."
    text = f"{title.strip()}\n{body.strip()}".strip()[:EXPERT_QUERY_MAX]
    tag_list = [tag for tag in parse_tags(tags) if TAG_PATTERN.match(tag)][:EXPERT_TAGS_MAX]
    if not text and not tag_list:
        return lookup_answer(heading, empty, [])
    try:
        found = await page.api.get(
            "/experts", q=text or None, tag=tag_list or None, limit=LOOKUP_SIZE + 1
        )
    except ApiError as exc:
        if exc.status >= 500 or exc.status == 401:
            raise
        return lookup_answer(heading, empty, [])
    items = []
    for expert in found["experts"]:
        if str(expert["user_id"]) == person.id:
            continue  # one does not ask oneself
        handle = expert.get("handle")
        name = expert.get("display_name") or (f"@{handle}" if handle else "Someone")
        titles = [item["title"] for item in expert.get("evidence", []) if item.get("title")]
        detail = expert.get("why") or ""
        if titles:
            shown = "; ".join(f"“{title}”" for title in titles[:2])
            detail = f"{detail} Evidence: {shown}".strip()
        items.append(
            {
                "text": f"{name} (@{handle})" if handle and name != f"@{handle}" else name,
                "href": f"/people/@{handle}" if handle else None,
                "detail": detail,
            }
        )
    return lookup_answer(heading, empty, items[:LOOKUP_SIZE])


# --- one question ------------------------------------------------------------------------


async def routing_of(page: Page, question: dict[str, Any]) -> dict[str, Any] | None:
    """Who the question was put to and why: for its asker (and administrators) only."""
    person = page.person
    if person is None or (str(question["author_id"]) != person.id and not person.is_admin):
        return None
    try:
        routing: dict[str, Any] = await page.api.get(f"/routing/questions/{question['id']}")
    except ApiError as exc:
        if exc.status in (403, 404):  # not routed yet (search hears of it shortly)
            return {"rounds": []}
        raise
    for round_ in routing["rounds"]:
        for routed in round_["people"]:
            for item in routed["evidence"]:
                item["url"] = content_url(item["kind"], item["content_id"])
    return routing


async def show_question(
    page: Page,
    question_id: UUID,
    *,
    answers_cursor: str | None = None,
    status: int = 200,
    error: str | None = None,
    form: str | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    """The question page; after a refusal, `form` names the form whose values and errors
    are shown again."""
    page.require_person()
    question, answers, groups = await asyncio.gather(
        page.api.get(f"/questions/{question_id}"),
        page.api.get(
            f"/questions/{question_id}/answers", cursor=answers_cursor, limit=ANSWERS_PER_PAGE
        ),
        page.api.get_all("/groups"),
    )
    routing = await routing_of(page, question)
    return await page.render(
        "questions/question.html",
        status=status,
        title=question["title"],
        question=question,
        answers=answers,
        answers_cursor=answers_cursor,
        group_name=group_names(groups).get(str(question["group_id"] or "")),
        routing=routing,
        error=error,
        failed_form=form,
        values=values or {},
        errors=errors or {},
    )


@router.get("/questions/{question_id}")
async def question_page(
    question_id: UUID, page: PageDep, answers_cursor: str | None = None
) -> Response:
    return await show_question(page, question_id, answers_cursor=answers_cursor)


async def act(
    page: Page,
    question_id: UUID,
    call: Any,
    *,
    did: str,
    form: str | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    """Run one API change for a form on the question page; redirect back, or show why not."""
    try:
        await call
    except ApiError as exc:
        if exc.status >= 500 or exc.status in (401, 404):
            raise
        return await show_question(
            page,
            question_id,
            status=exc.status if exc.status in (400, 403, 409, 412, 422) else 400,
            error=refusal(exc),
            form=form,
            values=values,
            errors=form_errors(exc),
        )
    return redirect(f"/questions/{question_id}", done=f"question-{did}")


def vote_value(raw: object) -> int:
    """The vote a button sends: 1, -1, or 0 to withdraw one's vote."""
    return {"1": 1, "-1": -1}.get(str(raw), 0)


@router.post("/questions/{question_id}/vote")
async def vote_question(question_id: UUID, page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    value = vote_value(form.get("value"))
    path = f"/questions/{question_id}/vote"
    call = page.api.put(path, {"value": value}) if value else page.api.delete(path)
    return await act(page, question_id, call, did="voted")


@router.post("/questions/{question_id}/answers/{answer_id}/vote")
async def vote_answer(question_id: UUID, answer_id: UUID, page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    value = vote_value(form.get("value"))
    path = f"/answers/{answer_id}/vote"
    call = page.api.put(path, {"value": value}) if value else page.api.delete(path)
    return await act(page, question_id, call, did="voted")


@router.post("/questions/{question_id}/accept")
async def accept(question_id: UUID, page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    answer_id = str(form.get("answer_id", ""))
    path = f"/questions/{question_id}/accepted-answer"
    if answer_id:
        return await act(
            page, question_id, page.api.put(path, {"answer_id": answer_id}), did="accepted"
        )
    return await act(page, question_id, page.api.delete(path), did="unaccepted")


@router.post("/questions/{question_id}/answers")
async def post_answer(question_id: UUID, page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    body = str(form.get("body", ""))
    call = page.api.post(f"/questions/{question_id}/answers", {"body": body})
    return await act(page, question_id, call, did="answered", form="answer", values={"body": body})


@router.post("/questions/{question_id}/comments")
async def comment_question(question_id: UUID, page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    body = str(form.get("body", ""))
    call = page.api.post(f"/questions/{question_id}/comments", {"body": body})
    return await act(
        page,
        question_id,
        call,
        did="commented",
        form=f"comment-{question_id}",
        values={"body": body},
    )


@router.post("/questions/{question_id}/answers/{answer_id}/comments")
async def comment_answer(question_id: UUID, answer_id: UUID, page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    body = str(form.get("body", ""))
    call = page.api.post(f"/answers/{answer_id}/comments", {"body": body})
    return await act(
        page, question_id, call, did="commented", form=f"comment-{answer_id}", values={"body": body}
    )


@router.post("/questions/{question_id}/answers/{answer_id}/delete")
async def delete_answer(question_id: UUID, answer_id: UUID, page: PageDep) -> Response:
    page.require_person()
    await page.form()
    return await act(page, question_id, page.api.delete(f"/answers/{answer_id}"), did="deleted")


@router.post("/questions/{question_id}/comments/{comment_id}/delete")
async def delete_comment(question_id: UUID, comment_id: UUID, page: PageDep) -> Response:
    page.require_person()
    await page.form()
    return await act(page, question_id, page.api.delete(f"/comments/{comment_id}"), did="deleted")


@router.post("/questions/{question_id}/delete")
async def delete_question(question_id: UUID, page: PageDep) -> Response:
    page.require_person()
    await page.form()
    try:
        await page.api.delete(f"/questions/{question_id}")
    except ApiError as exc:
        if exc.status >= 500 or exc.status in (401, 404):
            raise
        return await show_question(page, question_id, status=exc.status, error=exc.detail)
    return redirect("/questions", done="question-deleted")


@router.post("/questions/{question_id}/formalize")
async def formalize(question_id: UUID, page: PageDep) -> Response:
    """Make an article of the thread and go to it."""
    page.require_person()
    form = await page.form()
    title = str(form.get("title", "")).strip()
    try:
        article = await page.api.post(f"/questions/{question_id}/formalize", {"title": title})
    except ApiError as exc:
        if exc.status >= 500 or exc.status in (401, 404):
            raise
        return await show_question(
            page,
            question_id,
            status=exc.status if exc.status in (400, 403, 409, 422) else 400,
            error=refusal(exc),
            form="formalize",
            values={"title": title},
            errors=form_errors(exc),
        )
    return redirect(f"/articles/{article['id']}")


# --- editing --------------------------------------------------------------------------


@router.get("/questions/{question_id}/edit")
async def edit_question_page(question_id: UUID, page: PageDep) -> Response:
    page.require_person()
    question, etag = await page.api.get_with_etag(f"/questions/{question_id}")
    values = {
        "title": question["title"],
        "body": question["body"],
        "tags": " ".join(question["tags"]),
        "etag": etag or "",
    }
    return await page.render(
        "questions/edit.html",
        title="Edit your question",
        question=question,
        values=values,
        errors={},
        error=None,
    )


@router.post("/questions/{question_id}/edit")
async def edit_question(question_id: UUID, page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    values = {name: str(form.get(name, "")) for name in ("title", "body", "tags", "etag")}
    change = {
        "title": values["title"].strip(),
        "body": values["body"],
        "tags": parse_tags(values["tags"]),
    }
    try:
        await page.api.patch(f"/questions/{question_id}", change, etag=values["etag"] or None)
    except ApiError as exc:
        if exc.status >= 500 or exc.status in (401, 404):
            raise
        question, etag = await page.api.get_with_etag(f"/questions/{question_id}")
        return await page.render(
            "questions/edit.html",
            status=exc.status if exc.status in (400, 403, 409, 412, 422) else 400,
            title="Edit your question",
            question=question,
            values={**values, "etag": etag or ""},
            errors=form_errors(exc),
            error=CHANGED_MEANWHILE if exc.status == 412 else refusal(exc),
        )
    return redirect(f"/questions/{question_id}", done="question-edited")


@router.get("/questions/{question_id}/answers/{answer_id}/edit")
async def edit_answer_page(question_id: UUID, answer_id: UUID, page: PageDep) -> Response:
    page.require_person()
    (item, etag), question = await asyncio.gather(
        page.api.get_with_etag(f"/answers/{answer_id}"), page.api.get(f"/questions/{question_id}")
    )
    if str(item["question_id"]) != str(question_id):
        return redirect(f"/questions/{item['question_id']}/answers/{answer_id}/edit")
    return await page.render(
        "questions/edit_answer.html",
        title="Edit your answer",
        question=question,
        answer=item,
        values={"body": item["body"], "etag": etag or ""},
        errors={},
        error=None,
    )


@router.post("/questions/{question_id}/answers/{answer_id}/edit")
async def edit_answer(question_id: UUID, answer_id: UUID, page: PageDep) -> Response:
    page.require_person()
    form = await page.form()
    values = {name: str(form.get(name, "")) for name in ("body", "etag")}
    try:
        await page.api.patch(
            f"/answers/{answer_id}", {"body": values["body"]}, etag=values["etag"] or None
        )
    except ApiError as exc:
        if exc.status >= 500 or exc.status in (401, 404):
            raise
        (item, etag), question = await asyncio.gather(
            page.api.get_with_etag(f"/answers/{answer_id}"),
            page.api.get(f"/questions/{question_id}"),
        )
        return await page.render(
            "questions/edit_answer.html",
            status=exc.status if exc.status in (400, 403, 409, 412, 422) else 400,
            title="Edit your answer",
            question=question,
            answer=item,
            values={**values, "etag": etag or ""},
            errors=form_errors(exc),
            error=CHANGED_MEANWHILE if exc.status == 412 else refusal(exc),
        )
    return redirect(f"/questions/{question_id}", done="question-edited")
