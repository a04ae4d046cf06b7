"""A Stack Exchange dump into a running Knowflow, through the gateway's public API.

    plan = read_dump(folder)                     # what the dump holds, mapped to Knowflow
    report = await import_dump(plan, gateway_url=..., tokens=...)

Everyone who wrote something (asked, answered or commented) becomes an imported account
(`POST /users`, admins: original time, no password); then questions, answers, comments and
acceptances go in with the admin-only `origin` (author, original time, `source` = the
item's URL on the site, the site's score). The services answer a known `source` with 200
and the existing item, so a second run creates nothing and a run cut short is finished by
running it again. Phases run in order (people, questions, answers, comments, acceptances)
so a parent exists before its child; within a phase a bounded number of requests is in
flight. Throttling (429) and outages (503) are waited out as the `Retry-After` says.

All data is CC BY-SA (Stack Exchange Inc. and the site's contributors).
"""

import asyncio
import re
import time
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode
from uuid import UUID

import httpx
from markdownify import markdownify

from deploy.stackexchange import Answer, Question, Site, User, load_site, parse_time
from services.identity.policy import INVISIBLE_LETTERS, REFUSED_CATEGORIES

IMPORTER_HANDLE = "knowflow_importer"
IMPORTER_SOURCE = "knowflow:stackexchange-importer"
BODY_MAX = 30_000
COMMENT_MAX = 600
TITLE_MAX = 200
TAGS_MAX = 50
RETRYABLE = {429, 502, 503, 504}
_HANDLE_JUNK = re.compile(r"[^a-z0-9]+")
_TAG_JUNK = re.compile(r"[^a-z0-9_-]+")

Json = dict[str, Any]


@dataclass(frozen=True)
class Comment:
    id: int
    post_id: int
    owner: int
    created_at: datetime
    text: str


@dataclass
class Dump:
    """One site's dump, read and mapped: what the importer sends, in order."""

    site: Site
    bodies: dict[int, str] = field(default_factory=dict)  # post id → Markdown
    scores: dict[int, int] = field(default_factory=dict)  # post id → site score
    comments: list[Comment] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.site.host

    def contributors(self) -> list[int]:
        """Site ids of the people who asked, answered or commented, oldest account first."""
        ids = {question.owner for question in self.site.questions.values()}
        ids |= {answer.owner for answer in self.site.answers.values()}
        ids |= {comment.owner for comment in self.comments}
        known = [self.site.users[i] for i in ids if i in self.site.users]
        return [user.id for user in sorted(known, key=lambda user: (user.created_at, user.id))]

    def source(self, kind: str, item_id: int) -> str:
        """The item's public URL on the site: its key for idempotent imports."""
        path = {"user": "users", "question": "q", "answer": "a", "comment": "posts/comments"}
        return f"https://{self.host}/{path[kind]}/{item_id}"


def _rows(path: Path) -> Iterator[dict[str, str]]:
    if not path.exists():
        return
    for _event, element in ET.iterparse(path, events=("end",)):
        if element.tag == "row":
            yield dict(element.attrib)
            element.clear()


def html_to_markdown(html: str) -> str:
    """A post body as the site's Markdown (the dump keeps only the rendered HTML)."""
    markdown = markdownify(html, heading_style="ATX", bullets="-", code_language="")
    return re.sub(r"\n{3,}", "\n\n", markdown).strip()


def fit(text: str, limit: int, source: str) -> str:
    """Text within a field's limit; a cut says so and where the whole is."""
    if len(text) <= limit:
        return text
    note = f"\n\n… (cut; the whole is at {source})"
    return text[: limit - len(note)].rstrip() + note


def handle_for(display_name: str, site_id: int) -> str:
    """`^[a-z0-9_]{2,32}$` from a display name, unique on the site by its id."""
    ascii_name = unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode()
    base = _HANDLE_JUNK.sub("_", ascii_name.lower()).strip("_")[:20].strip("_") or "user"
    return f"{base}_{site_id}".replace("-", "m")


def display_name_for(display_name: str, site_id: int) -> str:
    """The name without what identity refuses (invisible, bidirectional, control characters)."""
    kept = "".join(
        character
        for character in display_name
        if unicodedata.category(character) not in REFUSED_CATEGORIES
        and character not in INVISIBLE_LETTERS
    )
    return kept.strip()[:100] or f"user{site_id}"


def fallback_handle(handle: str, host: str, site_id: int) -> str:
    """Another handle when the first is taken (say, by the same person on another site)."""
    site = _HANDLE_JUNK.sub("", host.split(".")[0])[:6] or "se"
    base = handle.rsplit("_", 1)[0][:14]
    return f"{base}_{site}{site_id}".replace("-", "m")


def tag_for(tag: str) -> str | None:
    """A site tag as a Knowflow tag (`c++` → `cplusplus`, `node.js` → `node-js`)."""
    mapped = tag.lower().replace("+", "plus").replace("#", "sharp")
    mapped = _TAG_JUNK.sub("-", mapped).strip("-_")[:50]
    return mapped or None


def read_dump(folder: Path) -> Dump:
    """The site (via `load_site`) plus what the import needs beyond it: bodies, scores, comments."""
    site = load_site(folder)
    dump = Dump(site=site)
    for row in _rows(folder / "Posts.xml"):
        post_id = int(row["Id"])
        if post_id in site.questions or post_id in site.answers:
            dump.bodies[post_id] = html_to_markdown(row.get("Body", ""))
            dump.scores[post_id] = int(row.get("Score") or 0)
    for row in _rows(folder / "Comments.xml"):
        post_id = int(row["PostId"])
        owner = row.get("UserId")
        if not owner or int(owner) not in site.users:
            dump.skipped["comment without a known author"] = (
                dump.skipped.get("comment without a known author", 0) + 1
            )
            continue
        if post_id not in site.questions and post_id not in site.answers:
            dump.skipped["comment on a skipped post"] = (
                dump.skipped.get("comment on a skipped post", 0) + 1
            )
            continue
        text = (row.get("Text") or "").strip()
        if not text:
            continue
        dump.comments.append(
            Comment(
                id=int(row["Id"]),
                post_id=post_id,
                owner=int(owner),
                created_at=parse_time(row["CreationDate"]),
                text=text,
            )
        )
    dump.comments.sort(key=lambda comment: (comment.created_at, comment.id))
    for reason, count in site.skipped.items():
        dump.skipped[reason] = dump.skipped.get(reason, 0) + count
    return dump


class Progress(Protocol):
    """Where the importer reports how far it is (a rich progress bar, or nothing)."""

    def phase(self, name: str, total: int) -> None: ...

    def advance(self) -> None: ...


class NoProgress:
    def phase(self, name: str, total: int) -> None:
        pass

    def advance(self) -> None:
        pass


@dataclass
class ImportReport:
    """What a run did per kind: created (201), already there (200), failed."""

    created: dict[str, int] = field(default_factory=dict)
    existing: dict[str, int] = field(default_factory=dict)
    failed: dict[str, list[str]] = field(default_factory=dict)
    group_id: UUID | None = None
    importer_id: UUID | None = None  # the account the import acted as (owns its group)
    seconds: float = 0.0

    def count(self, kind: str, status: int) -> None:
        target = self.created if status == 201 else self.existing
        target[kind] = target.get(kind, 0) + 1

    def fail(self, kind: str, message: str) -> None:
        self.failed.setdefault(kind, []).append(message)

    @property
    def total_created(self) -> int:
        return sum(self.created.values())

    def lines(self) -> list[str]:
        kinds = sorted({*self.created, *self.existing, *self.failed})
        rows = [
            f"{kind}: {self.created.get(kind, 0)} created, {self.existing.get(kind, 0)} "
            f"already there, {len(self.failed.get(kind, []))} failed"
            for kind in kinds
        ]
        return [*rows, f"in {self.seconds:.1f} s"]


class ImportFailed(Exception):
    """A request the importer cannot get through (after its retries)."""


@dataclass
class Gateway:
    """The platform's public API, as the importer calls it: admin token, retries, a bound."""

    client: httpx.AsyncClient
    tokens: Callable[[], str]
    in_flight: asyncio.Semaphore
    attempts: int = 8

    async def send(self, method: str, path: str, body: Json | None = None) -> httpx.Response:
        """The response to a request, after waiting out throttling and outages."""
        delay = 0.5
        for attempt in range(self.attempts):
            try:
                async with self.in_flight:
                    response = await self.client.request(
                        method,
                        path,
                        json=body,
                        headers={"Authorization": f"Bearer {self.tokens()}"},
                    )
            except httpx.TransportError as exc:
                if attempt == self.attempts - 1:
                    raise ImportFailed(f"{method} {path}: {exc!r}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            if response.status_code not in RETRYABLE or attempt == self.attempts - 1:
                return response
            await asyncio.sleep(_retry_after(response, delay))
            delay = min(delay * 2, 10.0)
        raise AssertionError("unreachable")

    async def create(self, path: str, body: Json) -> Json:
        """POST a create; the item made (201) or found by its source (200), with the status."""
        response = await self.send("POST", path, body)
        if response.status_code not in (200, 201):
            raise ImportFailed(f"POST {path}: {response.status_code} {response.text[:300]}")
        result: Json = response.json()
        result["_status"] = response.status_code
        return result


def _retry_after(response: httpx.Response, fallback: float) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", fallback)), 0.1), 30.0)
    except ValueError:
        return fallback


async def _each(
    items: list[Any], work: Callable[[Any], Awaitable[None]], progress: Progress, name: str
) -> None:
    """Run `work` on every item (the gateway bounds how many are in flight), with progress."""
    progress.phase(name, len(items))

    async def one(item: Any) -> None:
        await work(item)
        progress.advance()

    tasks = [asyncio.ensure_future(one(item)) for item in items]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        # A crash or Ctrl-C stops the phase at once: nothing is left half-sent behind it.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def import_dump(
    dump: Dump,
    *,
    gateway_url: str,
    tokens: Callable[[UUID | None], str],
    group: str | None = None,
    visibility: str = "open",
    concurrency: int = 16,
    progress: Progress | None = None,
    limit: int | None = None,
) -> ImportReport:
    """Send the dump through the gateway; `limit` stops after that many questions (tests)."""
    progress = progress or NoProgress()
    report = ImportReport()
    started = time.monotonic()
    site = dump.site
    async with httpx.AsyncClient(
        base_url=f"{gateway_url.rstrip('/')}/api/v1",
        timeout=60.0,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    ) as client:
        bootstrap = Gateway(client, lambda: tokens(None), asyncio.Semaphore(concurrency))
        # The import acts as its own (imported, password-less) admin account: it owns the group.
        importer = await bootstrap.create(
            "/users",
            {
                "handle": IMPORTER_HANDLE,
                "display_name": "Stack Exchange import",
                "created_at": datetime.now(UTC).isoformat(),
                "source": IMPORTER_SOURCE,
            },
        )
        importer_id = UUID(importer["id"])
        report.importer_id = importer_id
        api = Gateway(client, lambda: tokens(importer_id), bootstrap.in_flight)

        group_id = await _group(api, group, visibility, site) if group else None
        report.group_id = group_id

        questions = sorted(site.questions.values(), key=lambda q: (q.created_at, q.id))
        if limit is not None:
            questions = questions[:limit]
        question_ids = {question.id for question in questions}
        answers = sorted(
            (a for a in site.answers.values() if a.question_id in question_ids),
            key=lambda a: (a.created_at, a.id),
        )
        answer_ids = {answer.id for answer in answers}
        comments = [c for c in dump.comments if c.post_id in question_ids | answer_ids]
        wanted = (
            {q.owner for q in questions} | {a.owner for a in answers} | {c.owner for c in comments}
        )
        people = [site.users[i] for i in dump.contributors() if i in wanted]

        users: dict[int, UUID] = {}
        handles: dict[int, str] = {}
        posts: dict[int, UUID] = {}
        question_of: dict[int, int] = {answer.id: answer.question_id for answer in answers}

        async def guarded(kind: str, label: str, work: Awaitable[None]) -> None:
            try:
                await work
            except ImportFailed as exc:
                report.fail(kind, f"{label}: {exc}")

        async def person(user: User) -> None:
            async def go() -> None:
                body = {
                    "handle": handle_for(user.display_name, user.id),
                    "display_name": display_name_for(user.display_name, user.id),
                    "created_at": user.created_at.isoformat(),
                    "source": dump.source("user", user.id),
                }
                response = await api.send("POST", "/users", body)
                if response.status_code == 409:
                    body["handle"] = fallback_handle(str(body["handle"]), dump.host, user.id)
                    response = await api.send("POST", "/users", body)
                if response.status_code not in (200, 201):
                    raise ImportFailed(f"{response.status_code} {response.text[:300]}")
                users[user.id] = UUID(response.json()["id"])
                handles[user.id] = response.json()["handle"]
                report.count("user", response.status_code)
                if group_id is not None:
                    added = await api.send(
                        "POST", f"/groups/{group_id}/members", {"user_id": str(users[user.id])}
                    )
                    if added.status_code not in (201, 409):
                        raise ImportFailed(f"member: {added.status_code} {added.text[:300]}")

            await guarded("user", dump.source("user", user.id), go())

        def origin(owner: int, at: datetime, source: str, score: int | None = None) -> Json:
            found: Json = {
                "author_id": str(users[owner]),
                "author_handle": handles[owner],
                "created_at": at.isoformat(),
                "source": source,
            }
            if score is not None:
                found["score"] = score
            return found

        async def question(item: Question) -> None:
            source = dump.source("question", item.id)

            async def go() -> None:
                if item.owner not in users:
                    raise ImportFailed("its author was not imported")
                tags = [t for t in (tag_for(tag) for tag in item.tags) if t]
                body: Json = {
                    "title": fit(item.title or f"Question {item.id}", TITLE_MAX, source),
                    "body": fit(dump.bodies.get(item.id) or item.title or source, BODY_MAX, source),
                    "tags": list(dict.fromkeys(tags))[:TAGS_MAX],
                    "origin": origin(
                        item.owner, item.created_at, source, dump.scores.get(item.id, 0)
                    ),
                }
                if group_id is not None:
                    body["group_id"] = str(group_id)
                created = await api.create("/questions", body)
                posts[item.id] = UUID(created["id"])
                report.count("question", created["_status"])

            await guarded("question", source, go())

        async def answer(item: Answer) -> None:
            source = dump.source("answer", item.id)

            async def go() -> None:
                parent = posts.get(item.question_id)
                if parent is None or item.owner not in users:
                    raise ImportFailed("its question or author was not imported")
                created = await api.create(
                    f"/questions/{parent}/answers",
                    {
                        "body": fit(dump.bodies.get(item.id) or source, BODY_MAX, source),
                        "origin": origin(
                            item.owner, item.created_at, source, dump.scores.get(item.id, 0)
                        ),
                    },
                )
                posts[item.id] = UUID(created["id"])
                report.count("answer", created["_status"])

            await guarded("answer", source, go())

        async def comment(item: Comment) -> None:
            source = dump.source("comment", item.id)

            async def go() -> None:
                parent = posts.get(item.post_id)
                if parent is None or item.owner not in users:
                    raise ImportFailed("its post or author was not imported")
                on = "answers" if item.post_id in question_of else "questions"
                created = await api.create(
                    f"/{on}/{parent}/comments",
                    {
                        "body": fit(item.text, COMMENT_MAX, source),
                        "origin": origin(item.owner, item.created_at, source),
                    },
                )
                report.count("comment", created["_status"])

            await guarded("comment", source, go())

        accepted = [
            q for q in questions if q.accepted_answer_id and q.accepted_answer_id in answer_ids
        ]

        async def acceptance(item: Question) -> None:
            source = f"{dump.source('question', item.id)}#accepted"

            async def go() -> None:
                accepted_id = item.accepted_answer_id or 0
                question_id, answer_id = posts.get(item.id), posts.get(accepted_id)
                if question_id is None or answer_id is None or item.owner not in users:
                    raise ImportFailed("its question, answer or asker was not imported")
                answered = site.answers[accepted_id]
                at = max(
                    site.accepted_at.get(answered.id, answered.created_at), answered.created_at
                )
                current = await api.send("GET", f"/questions/{question_id}")
                if current.status_code == 200 and current.json().get("accepted_answer_id") == str(
                    answer_id
                ):
                    report.count("acceptance", 200)
                    return
                response = await api.send(
                    "PUT",
                    f"/questions/{question_id}/accepted-answer",
                    {"answer_id": str(answer_id), "origin": origin(item.owner, at, source)},
                )
                if response.status_code != 200:
                    raise ImportFailed(f"{response.status_code} {response.text[:300]}")
                report.count("acceptance", 201)

            await guarded("acceptance", source, go())

        await _each(people, person, progress, "people")
        await _each(questions, question, progress, "questions")
        await _each(answers, answer, progress, "answers")
        await _each(comments, comment, progress, "comments")
        await _each(accepted, acceptance, progress, "acceptances")
    report.seconds = time.monotonic() - started
    return report


async def _group(api: Gateway, slug: str, visibility: str, site: Site) -> UUID:
    """The importer's group with that slug, created (open or private) if it has none."""
    query: dict[str, str | int] = {"limit": 100}
    while True:
        listed = await api.send("GET", f"/groups?{urlencode(query)}")
        if listed.status_code != 200:
            raise ImportFailed(f"GET /groups: {listed.status_code} {listed.text[:300]}")
        page = listed.json()
        for group in page["items"]:
            if group["slug"] == slug and group["is_member"]:
                return UUID(group["id"])
        if page["next_cursor"] is None:
            break
        query["cursor"] = page["next_cursor"]
    created = await api.send(
        "POST",
        "/groups",
        {
            "name": f"{site.host} (imported)",
            "slug": slug,
            "description": site.attribution,
            "visibility": visibility,
        },
    )
    if created.status_code != 201:
        raise ImportFailed(f"POST /groups: {created.status_code} {created.text[:300]}")
    return UUID(created.json()["id"])
