"""A Stack Exchange data dump (Posts.xml; Users, Votes, Comments optional) as Knowflow events.

    site = load_site(DATA / "quantumcomputing")
    timeline = site_events(site)          # [TimedEvent(at, data)], oldest first

Only `Posts.xml` is required (many public dumps have nothing else). Rows without an owner
are skipped, and so are answers to skipped questions and comments on skipped posts.
Mapping:

- person → `UserRegistered`, handle `se<Id>`; display name from Users.xml, else the
  post's OwnerDisplayName, else `se<Id>`; at their Users.xml CreationDate, or just before
  their first post when Users.xml is missing;
- question → `QuestionCreated` (title, body without HTML, tags from `<a><b>` or `|a|b|`);
- answer → `AnswerCreated`, parent and thread = its question;
- comment (Comments.xml) → `CommentCreated`, parent = the post, thread = the question;
- acceptance → `AnswerAccepted` + `QuestionUpdated` (version 2, `accepted_answer_id`), at
  the acceptance vote's date (day precision in the dump, so never before the answer), or
  the answer's date when Votes.xml is missing;
- votes → `VoteCast`: with Votes.xml, one per up (2) or down (3) vote on a question or
  answer, from a synthetic voter (`#voter-<k>`: the dump hides who voted), at the vote's
  date, carrying the running score; without Votes.xml, one `VoteCast` per post whose
  Score is not 0, at the post's creation, carrying the dump's final Score (so a replay
  knows that score from the start: say so when measuring on it).

Ids are deterministic: uuid5 of the item's public URL, so a rerun maps to the same ids.
All data is CC BY-SA (Stack Exchange Inc. and the site's contributors): whatever is
derived from it must say so.
"""

import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from uuid import NAMESPACE_URL, UUID, uuid5

from shared.events.contracts import (
    AnswerAccepted,
    AnswerCreated,
    CommentCreated,
    QuestionCreated,
    QuestionUpdated,
    UserRegistered,
    VoteCast,
)
from shared.events.envelope import EventData

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "stackexchange"

QUESTION, ANSWER = "1", "2"
ACCEPTED_VOTE, UPVOTE, DOWNVOTE = "1", "2", "3"
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
    score: int = 0  # the dump's Score (net votes when the dump was taken)


@dataclass(frozen=True)
class Answer:
    id: int
    question_id: int
    owner: int
    created_at: datetime
    text: str
    score: int = 0


@dataclass(frozen=True)
class Comment:
    id: int
    post_id: int  # the question or answer it is on
    question_id: int
    owner: int
    created_at: datetime
    text: str


@dataclass
class Site:
    """One site's people, questions, answers, comments and votes, as read from its dump."""

    host: str
    users: dict[int, User] = field(default_factory=dict)
    questions: dict[int, Question] = field(default_factory=dict)
    answers: dict[int, Answer] = field(default_factory=dict)
    comments: dict[int, Comment] = field(default_factory=dict)
    accepted_at: dict[int, datetime] = field(default_factory=dict)  # answer id → vote date
    upvotes: dict[int, list[datetime]] = field(default_factory=lambda: defaultdict(list))
    downvotes: dict[int, list[datetime]] = field(default_factory=lambda: defaultdict(list))
    has_votes: bool = False  # Votes.xml was read: votes come from it, not from Score
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


def handle_of(se_id: int) -> str:
    return f"se{se_id}".replace("-", "m")


def voter_id(host: str, post_id: int, nth: int) -> UUID:
    """A stand-in for the k-th voter on a post (the dump does not say who voted)."""
    return uuid5(NAMESPACE_URL, f"https://{host}/a/{post_id}#voter-{nth}")


def content_id(host: str, post_id: int) -> UUID:
    return uuid5(NAMESPACE_URL, f"https://{host}/q/{post_id}")


def comment_id(host: str, se_id: int) -> UUID:
    return uuid5(NAMESPACE_URL, f"https://{host}/posts/comments/{se_id}")


def _rows(path: Path) -> Iterator[dict[str, str]]:
    for _event, element in ET.iterparse(path, events=("end",)):
        if element.tag == "row":
            yield dict(element.attrib)
            element.clear()


def _score(row: dict[str, str]) -> int:
    try:
        return int(row.get("Score") or 0)
    except ValueError:
        return 0


def load_site(folder: Path, host: str | None = None) -> Site:
    """Read one site's dump folder: Posts.xml, and Users, Comments, Votes.xml when present."""
    site = Site(host=host or f"{folder.name}.stackexchange.com")
    if (folder / "Users.xml").exists():
        for row in _rows(folder / "Users.xml"):
            se_id = int(row["Id"])
            site.users[se_id] = User(
                id=se_id,
                display_name=row.get("DisplayName") or handle_of(se_id),
                created_at=parse_time(row["CreationDate"]),
            )
    pending_answers = []
    first_seen: dict[int, tuple[datetime, str]] = {}
    for row in _rows(folder / "Posts.xml"):
        kind = row.get("PostTypeId")
        if kind not in (QUESTION, ANSWER):
            continue
        if not row.get("OwnerUserId"):
            site.skipped[
                "question without owner" if kind == QUESTION else "answer without owner"
            ] += 1
            continue
        owner, created = int(row["OwnerUserId"]), parse_time(row["CreationDate"])
        if owner not in first_seen or created < first_seen[owner][0]:
            first_seen[owner] = (created, row.get("OwnerDisplayName") or "")
        if kind == QUESTION:
            accepted = row.get("AcceptedAnswerId")
            site.questions[int(row["Id"])] = Question(
                id=int(row["Id"]),
                owner=owner,
                created_at=created,
                title=unescape(row.get("Title", "")).strip(),
                text=strip_html(row.get("Body", "")),
                tags=parse_tags(row.get("Tags", "")),
                accepted_answer_id=int(accepted) if accepted else None,
                score=_score(row),
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
            score=_score(row),
        )
    _add_missing_users(site, first_seen)
    if (folder / "Comments.xml").exists():
        _read_comments(site, folder / "Comments.xml")
    if (folder / "Votes.xml").exists():
        _read_votes(site, folder / "Votes.xml")
    return site


def _add_missing_users(site: Site, first_seen: dict[int, tuple[datetime, str]]) -> None:
    """Owners Users.xml does not list (or all of them, without it), known from their posts."""
    for se_id, (first_post, shown_name) in first_seen.items():
        if se_id not in site.users:
            site.users[se_id] = User(
                id=se_id,
                display_name=shown_name or handle_of(se_id),
                created_at=first_post - timedelta(seconds=1),
            )


def _read_comments(site: Site, path: Path) -> None:
    for row in _rows(path):
        post_id = int(row["PostId"])
        if post_id in site.questions:
            question_id = post_id
        elif post_id in site.answers:
            question_id = site.answers[post_id].question_id
        else:
            site.skipped["comment on a skipped post"] += 1
            continue
        if not row.get("UserId"):
            site.skipped["comment without owner"] += 1
            continue
        created = parse_time(row["CreationDate"])
        owner = int(row["UserId"])
        if owner not in site.users:  # without Users.xml, a commenter who never posted
            site.users[owner] = User(owner, handle_of(owner), created - timedelta(seconds=1))
        site.comments[int(row["Id"])] = Comment(
            id=int(row["Id"]),
            post_id=post_id,
            question_id=question_id,
            owner=owner,
            created_at=created,
            text=unescape(row.get("Text", "")).strip(),
        )


def _read_votes(site: Site, path: Path) -> None:
    site.has_votes = True
    for row in _rows(path):
        post_id = int(row["PostId"])
        kind = row["VoteTypeId"]
        if kind == ACCEPTED_VOTE and post_id in site.answers:
            site.accepted_at[post_id] = parse_time(row["CreationDate"])
        elif kind in (UPVOTE, DOWNVOTE) and (post_id in site.answers or post_id in site.questions):
            votes = site.upvotes if kind == UPVOTE else site.downvotes
            votes[post_id].append(parse_time(row["CreationDate"]))


def user_event(site: Site, user: User) -> TimedEvent:
    return TimedEvent(
        user.created_at,
        UserRegistered(
            user_id=user_id(site.host, user.id),
            handle=handle_of(user.id),
            display_name=user.display_name,
        ),
    )


def question_event(site: Site, question: Question) -> TimedEvent:
    qid = content_id(site.host, question.id)
    return TimedEvent(
        question.created_at,
        QuestionCreated(
            content_id=qid,
            kind="question",
            author_id=user_id(site.host, question.owner),
            group_id=None,
            visibility="public",
            version=1,
            title=question.title or f"Question {question.id}",
            body=question.text,
            tags=list(question.tags),
            mentions=[],
            parent_id=None,
            thread_id=qid,
            created_at=question.created_at,
            updated_at=question.created_at,
        ),
    )


def answer_event(site: Site, answer: Answer) -> TimedEvent:
    question = content_id(site.host, answer.question_id)
    return TimedEvent(
        answer.created_at,
        AnswerCreated(
            content_id=content_id(site.host, answer.id),
            kind="answer",
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


def comment_event(site: Site, comment: Comment) -> TimedEvent:
    return TimedEvent(
        comment.created_at,
        CommentCreated(
            content_id=comment_id(site.host, comment.id),
            kind="comment",
            author_id=user_id(site.host, comment.owner),
            group_id=None,
            visibility="public",
            version=1,
            title=None,
            body=comment.text or "(empty)",
            tags=[],
            mentions=[],
            parent_id=content_id(site.host, comment.post_id),
            thread_id=content_id(site.host, comment.question_id),
            created_at=comment.created_at,
            updated_at=comment.created_at,
        ),
    )


def acceptance_events(site: Site, question: Question, answer: Answer) -> list[TimedEvent]:
    """The accepted answer, and the question's new state (version 2), when it was accepted."""
    at = max(site.accepted_at.get(answer.id, answer.created_at), answer.created_at)
    asker = user_id(site.host, question.owner)
    created = question_event(site, question).data
    assert isinstance(created, QuestionCreated)
    updated = QuestionUpdated(
        **{
            **created.model_dump(),
            "version": 2,
            "updated_at": at,
            "accepted_answer_id": content_id(site.host, answer.id),
        }
    )
    accepted = AnswerAccepted(
        question_id=content_id(site.host, question.id),
        group_id=None,
        visibility="public",
        answer_id=content_id(site.host, answer.id),
        answer_author_id=user_id(site.host, answer.owner),
        previous_answer_id=None,
        asker_id=asker,
        accepted_by=asker,
        version=2,
    )
    return [TimedEvent(at, accepted), TimedEvent(at, updated)]


def vote_events(site: Site, post_id: int) -> list[TimedEvent]:
    """The votes on one question or answer, with the running score (see the module doc)."""
    item: Question | Answer = site.questions.get(post_id) or site.answers[post_id]
    question_id = item.id if isinstance(item, Question) else item.question_id
    if site.has_votes:
        votes = sorted(
            [(at, 1) for at in site.upvotes.get(post_id, [])]
            + [(at, -1) for at in site.downvotes.get(post_id, [])]
        )
    else:
        votes = [(item.created_at, 1 if item.score > 0 else -1)] if item.score else []
    events, score = [], 0
    for nth, (at, value) in enumerate(votes, start=1):
        score = score + value if site.has_votes else item.score
        events.append(
            TimedEvent(
                max(at, item.created_at),
                VoteCast(
                    question_id=content_id(site.host, question_id),
                    group_id=None,
                    visibility="public",
                    content_id=content_id(site.host, post_id),
                    kind="question" if isinstance(item, Question) else "answer",
                    author_id=user_id(site.host, item.owner),
                    voter_id=voter_id(site.host, post_id, nth),
                    value=1 if value > 0 else -1,
                    score=score,
                    version=nth,
                ),
            )
        )
    return events


_ORDER: dict[type[EventData], int] = {
    UserRegistered: 0,
    QuestionCreated: 1,
    AnswerCreated: 2,
    CommentCreated: 3,
    VoteCast: 4,
    AnswerAccepted: 5,
    QuestionUpdated: 6,
}


def site_events(site: Site) -> list[TimedEvent]:
    """Every event of the site, oldest first (a question before its answers)."""
    events = [user_event(site, user) for user in site.users.values()]
    events += [question_event(site, question) for question in site.questions.values()]
    events += [answer_event(site, answer) for answer in site.answers.values()]
    events += [comment_event(site, comment) for comment in site.comments.values()]
    for question in site.questions.values():
        answer = site.answers.get(question.accepted_answer_id or 0)
        if answer is not None:
            events += acceptance_events(site, question, answer)
    for post_id in [*site.questions, *site.answers]:
        events += vote_events(site, post_id)
    events.sort(key=lambda event: (event.at, _ORDER.get(type(event.data), 9)))
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
