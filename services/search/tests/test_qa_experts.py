"""Who will answer a question: free text and tags, votes, acceptance, skills; both engines."""

from collections.abc import Callable
from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient
from sqlmodel import Session, SQLModel, create_engine

from services.search import service
from services.search.engines.base import ExpertQuery
from services.search.models import SearchGroup, SearchMembership, SearchSkill
from services.search.tests.conftest import Headers, People, joined, post, settle_content
from shared.events.contracts import (
    AnswerAccepted,
    AnswerCreated,
    ContentSnapshot,
    QuestionCreated,
    UserProfileUpdated,
    VoteCast,
)
from shared.ids import new_id, utcnow
from shared.testing.fixtures import wait_for


def question(**fields: Any) -> ContentSnapshot:
    content_id = new_id()
    return post(
        kind="question",
        event=QuestionCreated,
        content_id=content_id,
        thread_id=content_id,
        **fields,
    )


def answer(of: ContentSnapshot, **fields: Any) -> ContentSnapshot:
    return post(
        kind="answer", event=AnswerCreated, thread_id=of.content_id, group_id=of.group_id, **fields
    )


def vote(item: ContentSnapshot, *, score: int, version: int) -> VoteCast:
    return VoteCast(
        question_id=item.thread_id or item.content_id,
        group_id=item.group_id,
        visibility=item.visibility,
        content_id=item.content_id,
        kind="answer",
        author_id=item.author_id,
        voter_id=new_id(),
        value=1,
        score=score,
        version=version,
    )


def accepted(of: ContentSnapshot, item: ContentSnapshot | None, *, version: int) -> AnswerAccepted:
    return AnswerAccepted(
        question_id=of.content_id,
        group_id=of.group_id,
        visibility=of.visibility,
        answer_id=item.content_id if item else None,
        answer_author_id=item.author_id if item else None,
        previous_answer_id=None,
        asker_id=of.author_id,
        accepted_by=of.author_id,
        version=version,
    )


def profile(user_id: UUID, skills: list[str]) -> UserProfileUpdated:
    return UserProfileUpdated(
        user_id=user_id, handle=f"u{user_id.hex[:8]}", display_name="U", bio="", skills=skills
    )


def ask(client: TestClient, headers: Headers, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/experts", params=params, headers=headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["experts"]
    return found


def ids(ranked: list[dict[str, Any]]) -> list[str]:
    return [entry["user_id"] for entry in ranked]


def test_a_question_in_plain_language_finds_who_answered_a_similar_one(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    """Regression: every word of the query was required, so a question as a person types it
    found nobody unless one item held all its words."""
    me = people.header(new_id())
    answerer = new_id()
    earlier = question(title="Rotating Vault secrets", body="Our tokens expire weekly")
    reply_ = answer(earlier, body="Use the periodic token renewal", author_id=answerer)
    settle_content(search_client, me, publish_events, earlier, reply_)

    asked = "How should we rotate the secrets stored in vault every month?"
    by_topic = ask(search_client, me, topic=asked)
    by_text = ask(search_client, me, q=asked)

    assert answerer in {UUID(i) for i in ids(by_topic)}
    assert ids(by_text)[0] == str(answerer)
    assert by_text[0]["evidence"][0]["kind"] == "answer"
    assert "text match" in by_text[0]["evidence"][0]["why"]


def test_the_accepted_and_upvoted_answerer_ranks_first_and_the_evidence_says_why(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    plain, praised = sorted((new_id(), new_id()), key=str)  # the tie would go to `plain`
    asked = question(title="Plutus script budget", body="exceeds the budget", tags=["plutus"])
    first = answer(asked, body="lower the redeemer size", author_id=plain)
    second = answer(asked, body="split the validator", author_id=praised)
    settle_content(search_client, me, publish_events, asked, first, second)
    assert ids(ask(search_client, me, q="plutus budget", tag="plutus"))[:2] == [
        str(plain),
        str(praised),
    ]

    publish_events(vote(second, score=3, version=3), accepted(asked, second, version=2))

    def both_applied() -> bool:
        # The vote alone already puts `praised` first: wait for the acceptance too.
        top = ask(search_client, me, q="plutus budget", tag="plutus")[0]
        evidence = top["evidence"][0]
        return (top["user_id"], evidence["score"], evidence["accepted"]) == (str(praised), 3, True)

    wait_for(both_applied)

    top = ask(search_client, me, q="plutus budget", tag="plutus")[0]
    evidence = top["evidence"][0]
    assert evidence["why"].startswith("answer, accepted, +3 votes")
    assert "tags plutus" in evidence["why"]
    assert "1 answer on the topic (1 accepted, +3 votes)" in top["why"]


def test_votes_and_acceptance_apply_once_and_a_late_older_one_changes_nothing(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    asked = question(title="Haskell laziness", body="space leak")
    reply_ = answer(asked, body="use strict folds", author_id=new_id())
    author = str(reply_.author_id)
    settle_content(search_client, me, publish_events, asked, reply_)

    def shown() -> tuple[int, bool]:
        (entry,) = [e for e in ask(search_client, me, q="haskell") if e["user_id"] == author]
        item = next(i for i in entry["evidence"] if i["content_id"] == str(reply_.content_id))
        return item["score"], item["accepted"]

    publish_events(
        vote(reply_, score=5, version=2),
        vote(reply_, score=1, version=1),  # late and older
        vote(reply_, score=5, version=2),  # replayed
        accepted(asked, reply_, version=2),
    )
    wait_for(lambda: shown() == (5, True))
    publish_events(accepted(asked, None, version=3), accepted(asked, reply_, version=2))
    wait_for(lambda: shown() == (5, False))


def test_a_declared_skill_proposes_a_newcomer_and_an_older_profile_does_not_undo_a_newer(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    newcomer, veteran = new_id(), new_id()
    asked = question(title="Kafka partitions", body="how many", tags=["kafka"])
    reply_ = answer(asked, body="one per consumer", author_id=veteran)
    settle_content(search_client, me, publish_events, asked, reply_)
    publish_events(profile(newcomer, ["Kafka", "Go"]))
    wait_for(lambda: str(newcomer) in ids(ask(search_client, me, q="partitions", tag="kafka")))

    ranked = ask(search_client, me, q="partitions", tag="kafka")
    assert ids(ranked)[0] == str(veteran)
    (declared,) = [entry for entry in ranked if entry["user_id"] == str(newcomer)]
    assert declared["evidence"] == [] and declared["why"] == "declares kafka"
    assert declared["score"] < ranked[0]["score"]

    publish_events(profile(newcomer, ["rust"]))
    wait_for(lambda: str(newcomer) not in ids(ask(search_client, me, tag="kafka")))
    assert ids(ask(search_client, me, q="rust")) == [str(newcomer)]


def test_a_private_groups_question_is_never_evidence_for_an_outsider_asking_in_free_text(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    group, member_id, insider = new_id(), new_id(), new_id()
    member, outsider = people.header(member_id), people.header(new_id())
    secret = question(title="Payroll export failing", body="the payroll job", group_id=group)
    reply_ = answer(secret, body="restart the exporter", author_id=insider)
    publish_events(joined(group, member_id))
    settle_content(search_client, member, publish_events, secret, reply_)
    publish_events(vote(reply_, score=9, version=1), accepted(secret, reply_, version=2))
    text = "Why is my payroll export failing?"
    wait_for(lambda: ids(ask(search_client, member, q=text))[:1] == [str(insider)])

    assert ask(search_client, outsider, q=text) == []
    assert ask(search_client, outsider, q=text, tag="payroll") == []


def test_members_of_the_questions_group_are_priors_only_for_a_caller_in_that_group() -> None:
    database = create_engine("sqlite://")
    SQLModel.metadata.create_all(
        database,
        tables=[
            SearchGroup.__table__,  # type: ignore[attr-defined]
            SearchMembership.__table__,  # type: ignore[attr-defined]
            SearchSkill.__table__,  # type: ignore[attr-defined]
        ],
    )
    group, member = new_id(), new_id()
    with Session(database) as session:
        session.add(
            SearchGroup(
                group_id=group, slug="ops", name="Ops", visibility="private", owner_id=member
            )
        )
        session.add(
            SearchMembership(group_id=group, user_id=member, is_member=True, changed_at=utcnow())
        )
        session.commit()
        query = ExpertQuery.parse("disk full", group_id=group)

        inside = service.list_priors(session=session, query=query, groups=[group])
        outside = service.list_priors(session=session, query=query, groups=[])

    assert [(p.user_id, p.why) for p in inside] == [(member, "member of Ops")]
    assert outside == []
