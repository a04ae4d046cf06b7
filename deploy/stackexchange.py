"""A Stack Exchange data dump (Posts, Users, Votes XML) as Knowflow events.

    site = load_site(DATA / "quantumcomputing")
    timeline = site_events(site)          # [TimedEvent(at, data)], oldest first

Mapping (rows without an owner are skipped, and so are answers to skipped questions):

- user → `UserRegistered` (handle `se<Id>`, display name as on the site), at CreationDate;
- question → `PostCreated` kind "post": title = Title, body = Title + Body without
  HTML, tags from the Tags attribute (`<a><b>` or `|a|b|`);
- answer → `PostCreated` kind "reply", parent and thread = its question;
- accepted answer → `ReactionAdded` "thanks" from the asker (unless they answered
  themselves), at the acceptance vote's date (day precision in the dump, so never
  earlier than the answer), or the answer's date when the vote is missing;
- optionally (`upvote_thanks=N`), every upvote on an answer with at least N upvotes
  → a "thanks" from a synthetic voter (`voter-<k>` for the k-th upvote of that answer,
  as the dump hides who voted), at the vote's date.

Ids are deterministic: uuid5 of the item's public URL, so a rerun maps to the same ids.
All data is CC BY-SA (Stack Exchange Inc. and the site's contributors): whatever is
derived from it must say so.
"""

import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from uuid import NAMESPACE_URL, UUID, uuid5

from shared.events.contracts import PostCreated, ReactionAdded, UserRegistered
from shared.events.envelope import EventData

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "stackexchange"

QUESTION, ANSWER = "1", "2"
ACCEPTED_VOTE, UPVOTE = "1", "2"
_TAG = re.compile(r"<([^<>]+)>|\|([^|]+)")
_SPACE = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


@dataclass(frozen=True)
class User:
    id: int
    display_name: str
    created_at: datetime


@dataclass(frozen=True)
class Question:
    id: int
    owner: int
    created_at: datetime
    title: str
    text: str
    tags: tuple[str, ...]
    accepted_answer_id: int | None


@dataclass(frozen=True)
class Answer:
    id: int
    question_id: int
    owner: int
    created_at: datetime
    text: str


@dataclass
class Site:
    """One site's people, questions, answers and votes, as read from its dump."""

    host: str
    users: dict[int, User] = field(default_factory=dict)
    questions: dict[int, Question] = field(default_factory=dict)
    answers: dict[int, Answer] = field(default_factory=dict)
    accepted_at: dict[int, datetime] = field(default_factory=dict)  # answer id → vote date
    upvotes: dict[int, list[datetime]] = field(default_factory=lambda: defaultdict(list))
    skipped: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def answers_by_question(self) -> dict[int, list[Answer]]:
        found: dict[int, list[Answer]] = defaultdict(list)
        for answer in self.answers.values():
            found[answer.question_id].append(answer)
        return found

    @property
    def attribution(self) -> str:
        return (
            f"Data: Stack Exchange {self.host} (https://{self.host}), CC BY-SA; "
            "user contributions by the site's members, from the Stack Exchange data dump."
        )


@dataclass(frozen=True)
class TimedEvent:
    """An event and when it happened on the site (what a time split cuts on)."""

    at: datetime
    data: EventData


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, _attrs: object) -> None:
        if tag in {"p", "br", "li", "pre", "h1", "h2", "h3", "blockquote", "tr"}:
            self.parts.append("\n")


def strip_html(body: str) -> str:
    """The text of a post body, tags removed, paragraphs kept as blank lines."""
    parser = _TextOnly()
    parser.feed(body)
    parser.close()
    text = _SPACE.sub(" ", "".join(parser.parts))
    return _BLANK_LINES.sub("\n\n", text).strip()


def parse_tags(raw: str) -> tuple[str, ...]:
    """`<a><b>` (older dumps) or `|a|b|` (newer ones) → ("a", "b")."""
    found = (left or right for left, right in _TAG.findall(unescape(raw)))
    return tuple(dict.fromkeys(tag.strip().lower() for tag in found if tag.strip()))


def parse_time(raw: str) -> datetime:
    """Dump dates are UTC without a zone."""
    return datetime.fromisoformat(raw).replace(tzinfo=UTC)


def user_id(host: str, se_id: int) -> UUID:
    return uuid5(NAMESPACE_URL, f"https://{host}/users/{se_id}")


def voter_id(host: str, answer_id: int, nth: int) -> UUID:
    """A stand-in for the k-th upvoter of an answer (the dump does not say who voted)."""
    return uuid5(NAMESPACE_URL, f"https://{host}/a/{answer_id}#voter-{nth}")


def content_id(host: str, post_id: int) -> UUID:
    return uuid5(NAMESPACE_URL, f"https://{host}/q/{post_id}")


def _rows(path: Path) -> Iterator[dict[str, str]]:
    for _event, element in ET.iterparse(path, events=("end",)):
        if element.tag == "row":
            yield dict(element.attrib)
            element.clear()


def load_site(folder: Path, host: str | None = None) -> Site:
    """Read Users.xml, Posts.xml and Votes.xml of one site's dump folder."""
    site = Site(host=host or f"{folder.name}.stackexchange.com")
    for row in _rows(folder / "Users.xml"):
        se_id = int(row["Id"])
        site.users[se_id] = User(
            id=se_id,
            display_name=row.get("DisplayName") or f"user{se_id}",
            created_at=parse_time(row["CreationDate"]),
        )
    pending_answers = []
    for row in _rows(folder / "Posts.xml"):
        kind = row.get("PostTypeId")
        if kind not in (QUESTION, ANSWER):
            continue
        if not row.get("OwnerUserId"):
            site.skipped[
                "question without owner" if kind == QUESTION else "answer without owner"
            ] += 1
            continue
        if kind == QUESTION:
            accepted = row.get("AcceptedAnswerId")
            site.questions[int(row["Id"])] = Question(
                id=int(row["Id"]),
                owner=int(row["OwnerUserId"]),
                created_at=parse_time(row["CreationDate"]),
                title=unescape(row.get("Title", "")).strip(),
                text=strip_html(row.get("Body", "")),
                tags=parse_tags(row.get("Tags", "")),
                accepted_answer_id=int(accepted) if accepted else None,
            )
        else:
            pending_answers.append(row)
    for row in pending_answers:  # an answer may come before its question in the file
        question_id = int(row["ParentId"])
        if question_id not in site.questions:
            site.skipped["answer to a skipped question"] += 1
            continue
        site.answers[int(row["Id"])] = Answer(
            id=int(row["Id"]),
            question_id=question_id,
            owner=int(row["OwnerUserId"]),
            created_at=parse_time(row["CreationDate"]),
            text=strip_html(row.get("Body", "")),
        )
    for row in _rows(folder / "Votes.xml"):
        post_id = int(row["PostId"])
        if post_id not in site.answers:
            continue
        if row["VoteTypeId"] == ACCEPTED_VOTE:
            site.accepted_at[post_id] = parse_time(row["CreationDate"])
        elif row["VoteTypeId"] == UPVOTE:
            site.upvotes[post_id].append(parse_time(row["CreationDate"]))
    return site


def user_event(site: Site, user: User) -> TimedEvent:
    return TimedEvent(
        user.created_at,
        UserRegistered(
            user_id=user_id(site.host, user.id),
            handle=f"se{user.id}".replace("-", "m"),
            display_name=user.display_name,
        ),
    )


def question_event(site: Site, question: Question) -> TimedEvent:
    return TimedEvent(
        question.created_at,
        PostCreated(
            content_id=content_id(site.host, question.id),
            kind="post",
            author_id=user_id(site.host, question.owner),
            group_id=None,
            visibility="public",
            version=1,
            title=question.title or None,
            body=f"{question.title}\n\n{question.text}".strip(),
            tags=list(question.tags),
            mentions=[],
            parent_id=None,
            thread_id=None,
            created_at=question.created_at,
            updated_at=question.created_at,
        ),
    )


def answer_event(site: Site, answer: Answer) -> TimedEvent:
    question = content_id(site.host, answer.question_id)
    return TimedEvent(
        answer.created_at,
        PostCreated(
            content_id=content_id(site.host, answer.id),
            kind="reply",
            author_id=user_id(site.host, answer.owner),
            group_id=None,
            visibility="public",
            version=1,
            title=None,
            body=answer.text,
            tags=[],
            mentions=[],
            parent_id=question,
            thread_id=question,
            created_at=answer.created_at,
            updated_at=answer.created_at,
        ),
    )


def thanks_event(site: Site, answer: Answer, giver: UUID, at: datetime) -> TimedEvent:
    return TimedEvent(
        max(at, answer.created_at),
        ReactionAdded(
            content_id=content_id(site.host, answer.id),
            author_id=user_id(site.host, answer.owner),
            user_id=giver,
            kind="thanks",
            group_id=None,
            visibility="public",
        ),
    )


def site_events(site: Site, *, upvote_thanks: int | None = None) -> list[TimedEvent]:
    """Every event of the site, oldest first (a question before its answers)."""
    events = [user_event(site, user) for user in site.users.values()]
    events += [question_event(site, question) for question in site.questions.values()]
    events += [answer_event(site, answer) for answer in site.answers.values()]
    for question in site.questions.values():
        answer = site.answers.get(question.accepted_answer_id or 0)
        if answer is None or answer.owner == question.owner:
            continue
        at = site.accepted_at.get(answer.id, answer.created_at)
        events.append(thanks_event(site, answer, user_id(site.host, question.owner), at))
    if upvote_thanks is not None:
        for answer_id, votes in site.upvotes.items():
            if len(votes) < upvote_thanks:
                continue
            answer = site.answers[answer_id]
            for nth, at in enumerate(sorted(votes)):
                voter = voter_id(site.host, answer_id, nth)
                events.append(thanks_event(site, answer, voter, at))
    order = {UserRegistered: 0, PostCreated: 1, ReactionAdded: 2}
    events.sort(key=lambda event: (event.at, order.get(type(event.data), 3)))
    return events


# --- PostLinks.xml: which questions the site linked, and which it closed as duplicates ---

LINKED, DUPLICATE = "1", "3"


@dataclass(frozen=True)
class PostLink:
    """A row of PostLinks.xml: `post_id` links to `related_post_id` (type 3: duplicate of)."""

    post_id: int
    related_post_id: int
    link_type: str  # "1" linked, "3" duplicate
    created_at: datetime


def load_post_links(folder: Path) -> list[PostLink]:
    """The rows of one dump folder's PostLinks.xml (none when the dump has no such file)."""
    path = folder / "PostLinks.xml"
    if not path.exists():
        return []
    return [
        PostLink(
            post_id=int(row["PostId"]),
            related_post_id=int(row["RelatedPostId"]),
            link_type=row["LinkTypeId"],
            created_at=parse_time(row["CreationDate"]),
        )
        for row in _rows(path)
    ]
