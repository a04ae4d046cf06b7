"""The Stack Exchange dump loader: Posts.xml alone is enough; the Q&A events it maps to."""

from datetime import datetime
from pathlib import Path
from typing import TypeVar

from deploy.stackexchange import TimedEvent, content_id, load_site, site_events, user_id
from shared.events.contracts import (
    AnswerAccepted,
    AnswerCreated,
    CommentCreated,
    QuestionCreated,
    QuestionUpdated,
    UserRegistered,
    VoteCast,
)

T = TypeVar("T")
HOST = "tiny.stackexchange.com"
POSTS = """<?xml version="1.0" encoding="utf-8"?>
<posts>
  <row Id="1" PostTypeId="1" AcceptedAnswerId="3" CreationDate="2021-05-01T10:00:00.000"
       Score="2" OwnerUserId="7" OwnerDisplayName="Ada" Title="Why &amp; how?"
       Body="&lt;p&gt;How does &lt;b&gt;staking&lt;/b&gt; work?&lt;/p&gt;" Tags="|staking|pools|" />
  <row Id="2" PostTypeId="2" ParentId="1" CreationDate="2021-05-01T11:00:00.000" Score="-1"
       OwnerUserId="8" Body="&lt;p&gt;Guess&lt;/p&gt;" />
  <row Id="3" PostTypeId="2" ParentId="1" CreationDate="2021-05-01T12:00:00.000" Score="5"
       OwnerUserId="9" Body="&lt;p&gt;Delegate to a pool&lt;/p&gt;" />
  <row Id="4" PostTypeId="2" ParentId="1" CreationDate="2021-05-01T12:30:00.000" Score="0"
       Body="&lt;p&gt;ownerless&lt;/p&gt;" />
</posts>
"""
VOTES = """<?xml version="1.0" encoding="utf-8"?>
<votes>
  <row Id="1" PostId="3" VoteTypeId="2" CreationDate="2021-05-01T00:00:00.000" />
  <row Id="2" PostId="3" VoteTypeId="2" CreationDate="2021-05-03T00:00:00.000" />
  <row Id="3" PostId="3" VoteTypeId="3" CreationDate="2021-05-04T00:00:00.000" />
  <row Id="4" PostId="3" VoteTypeId="1" CreationDate="2021-05-02T00:00:00.000" />
</votes>
"""
COMMENTS = """<?xml version="1.0" encoding="utf-8"?>
<comments>
  <row Id="11" PostId="3" Text="Thanks!" CreationDate="2021-05-01T13:00:00.000" UserId="42" />
</comments>
"""


def timed(events: list[TimedEvent], model: type[T]) -> list[tuple[datetime, T]]:
    """(time, event) of one type, in timeline order."""
    return [(e.at, e.data) for e in events if isinstance(e.data, model)]


def dump(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "tiny"
    folder.mkdir()
    for name, text in files.items():
        (folder / f"{name}.xml").write_text(text)
    return folder


def test_posts_xml_alone_maps_to_questions_answers_acceptance_and_scores(tmp_path: Path) -> None:
    site = load_site(dump(tmp_path, Posts=POSTS), host=HOST)
    events = site_events(site)
    kinds = [type(event.data) for event in events]

    assert dict(site.skipped) == {"answer without owner": 1}
    users = {e.data.handle: e.data for e in events if isinstance(e.data, UserRegistered)}
    assert set(users) == {"se7", "se8", "se9"}
    assert users["se7"].display_name == "Ada" and users["se8"].display_name == "se8"
    (question,) = [e.data for e in events if isinstance(e.data, QuestionCreated)]
    assert (question.title, question.body, question.tags) == (
        "Why & how?",
        "How does staking work?",
        ["staking", "pools"],
    )
    assert question.thread_id == question.content_id == content_id(HOST, 1)
    answers = [e.data for e in events if isinstance(e.data, AnswerCreated)]
    assert [a.thread_id for a in answers] == [question.content_id] * 2
    ((accepted_at, accepted),) = timed(events, AnswerAccepted)
    assert accepted.answer_id == content_id(HOST, 3)
    assert accepted.answer_author_id == user_id(HOST, 9)
    assert accepted_at == answers[1].created_at  # no Votes.xml: at the answer's time
    (updated,) = [e.data for e in events if isinstance(e.data, QuestionUpdated)]
    assert (updated.version, updated.accepted_answer_id) == (2, content_id(HOST, 3))
    # Without Votes.xml, the dump's Score, once per post that has one.
    scores = {e.data.content_id: e.data.score for e in events if isinstance(e.data, VoteCast)}
    assert scores == {content_id(HOST, 1): 2, content_id(HOST, 2): -1, content_id(HOST, 3): 5}
    assert kinds.index(QuestionCreated) < kinds.index(AnswerCreated)
    assert [e.at for e in events] == sorted(e.at for e in events)


def test_votes_and_comments_when_present_carry_their_own_dates(tmp_path: Path) -> None:
    site = load_site(dump(tmp_path, Posts=POSTS, Votes=VOTES, Comments=COMMENTS), host=HOST)
    events = site_events(site)

    votes = timed(events, VoteCast)
    assert [(vote.value, vote.score, vote.version) for _, vote in votes] == [
        (1, 1, 1),
        (1, 2, 2),
        (-1, 1, 3),
    ]
    assert votes[0][0] == site.answers[3].created_at  # a day-precision vote, never earlier
    assert len({vote.voter_id for _, vote in votes}) == 3
    ((accepted_at, _accepted),) = timed(events, AnswerAccepted)
    assert accepted_at.day == 2
    (comment,) = [e.data for e in events if isinstance(e.data, CommentCreated)]
    assert comment.parent_id == content_id(HOST, 3)
    assert comment.thread_id == content_id(HOST, 1)
    assert comment.author_id == user_id(HOST, 42)  # a commenter who never posted is a person
