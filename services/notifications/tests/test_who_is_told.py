"""Each kind of notification reaches the right person once, and never the one who acted."""

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient

from services.notifications.tests.factories import content, inbox, person
from shared.events.contracts import (
    AnswerAccepted,
    AnswerCreated,
    CommentCreated,
    DigestReady,
    DigestReadyItem,
    DigestReadySection,
    GroupCreated,
    GroupMemberAdded,
    PostUpdated,
    QuestionCreated,
    QuestionRouted,
    RoutedEvidence,
)
from shared.ids import new_id, utcnow

Publish = Callable[..., None]
AuthHeader = Callable[..., dict[str, str]]


def test_a_mention_reaches_the_person_once_across_edits_and_replays_but_not_the_author(
    client: TestClient,
    publish: Publish,
    publish_events: Callable[..., None],
    auth_header: AuthHeader,
) -> None:
    ada, ada_registered = person("ada", "Ada Lovelace")
    ben, ben_registered = person("ben", "Ben Ng")
    cy, cy_registered = person("cy")
    post = content(author=ada, title="Rotating keys", mentions=("@ben", "ada"))
    publish(ada_registered, ben_registered, cy_registered, post, post)  # a duplicate delivery
    edit = content(
        author=ada,
        model=PostUpdated,
        content_id=post.content_id,
        title="Rotating keys",
        mentions=("ben", "@Cy"),
        version=2,
    )
    publish(edit, edit)

    [told] = inbox(client, auth_header(ben))
    assert told["kind"] == "mention"
    assert told["title"] == "Ada Lovelace mentioned you in “Rotating keys”"
    assert told["reason"] == "you were mentioned"
    assert told["url"] == f"/api/v1/posts/{post.content_id}"
    assert told["actor"]["handle"] == "ada"
    assert [item["kind"] for item in inbox(client, auth_header(cy))] == ["mention"]
    assert inbox(client, auth_header(ada)) == []


def test_an_answer_and_comments_reach_the_asker_and_the_answerer(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    ada, ada_registered = person("ada", "Ada Lovelace")
    ben, ben_registered = person("ben", "Ben Ng")
    question_id = new_id()
    question = content(
        author=ada,
        model=QuestionCreated,
        kind="question",
        content_id=question_id,
        thread_id=question_id,
        title="Why Plutus?",
    )
    answer = content(author=ben, model=AnswerCreated, kind="answer", parent_id=question.content_id)
    on_answer = content(
        author=ada,
        model=CommentCreated,
        kind="comment",
        parent_id=answer.content_id,
        thread_id=question.content_id,
    )
    own_comment = content(
        author=ada, model=CommentCreated, kind="comment", parent_id=question.content_id
    )
    publish(ada_registered, ben_registered, question, answer, on_answer, own_comment)

    [answered] = inbox(client, auth_header(ada))
    assert (answered["kind"], answered["title"]) == ("answer", "Ben Ng answered “Why Plutus?”")
    assert answered["reason"] == "you asked this question"
    assert answered["url"] == f"/api/v1/questions/{question.content_id}"
    assert answered["group_key"] == f"answer:{question.content_id}"
    [commented] = inbox(client, auth_header(ben))
    assert commented["title"] == "Ada Lovelace commented on your answer “Why Plutus?”"
    assert commented["group_key"] == f"comment:{answer.content_id}"


def test_acceptance_reaches_the_answerer_but_not_when_they_accept_their_own(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    ada, ada_registered = person("ada", "Ada Lovelace")
    ben, _ = person("ben")
    question_id, answer_id, own_answer = new_id(), new_id(), new_id()

    def accepted(answer: object, author: object, version: int) -> AnswerAccepted:
        return AnswerAccepted(
            question_id=question_id,
            group_id=None,
            visibility="public",
            answer_id=answer,
            answer_author_id=author,
            previous_answer_id=None,
            asker_id=ada,
            accepted_by=ada,
            version=version,
        )

    publish(ada_registered, accepted(answer_id, ben, 2), accepted(own_answer, ada, 3))
    [told] = inbox(client, auth_header(ben))
    assert (told["kind"], told["reason"]) == ("accepted", "your answer was accepted")
    assert told["title"] == "Ada Lovelace accepted your answer"
    assert inbox(client, auth_header(ada)) == []


def test_a_routed_question_says_why_and_escalations_tell_the_asker_once_per_round(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    ada, ada_registered = person("ada", "Ada Lovelace")
    ben, cy, dee = new_id(), new_id(), new_id()
    question_id = new_id()

    def routed(user: object, round_: int) -> QuestionRouted:
        return QuestionRouted(
            question_id=question_id,
            title="Why Plutus?",
            user_id=user,
            asker_id=ada,
            round=round_,
            reason="you answered 4 questions on #plutus",
            evidence=[
                RoutedEvidence(content_id=new_id(), kind="answer", title=None, why="#plutus")
            ],
            group_id=None,
            visibility="public",
        )

    publish(ada_registered, routed(ben, 1), routed(cy, 2), routed(dee, 2), routed(dee, 2))

    [asked] = inbox(client, auth_header(ben))
    assert asked["reason"] == "you were asked because you answered 4 questions on #plutus"
    assert asked["details"]["round"] == 1 and asked["details"]["escalation"] is False
    assert inbox(client, auth_header(dee))[0]["details"]["escalation"] is True
    [escalated] = inbox(client, auth_header(ada))
    assert escalated["kind"] == "escalated"
    assert escalated["title"] == "Your question “Why Plutus?” went to 2 more people"


def test_being_added_or_given_a_role_by_someone_else_notifies_but_joining_yourself_does_not(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    ada, ada_registered = person("ada", "Ada Lovelace")
    ben, cy = new_id(), new_id()
    group_id = new_id()

    def added(user: object, role: str, version: int, by: object) -> GroupMemberAdded:
        return GroupMemberAdded(
            group_id=group_id,
            visibility="open",
            user_id=user,
            role=role,
            version=version,
            added_by=by,
        )

    publish(
        ada_registered,
        GroupCreated(group_id=group_id, visibility="open", slug="ops", name="Ops", owner_id=ada),
        added(ada, "owner", 1, ada),
        added(ben, "member", 1, ada),
        added(ben, "member", 1, ada),  # a replay
        added(ben, "owner", 2, ada),
        added(cy, "member", 1, cy),
        added(cy, "moderator", 2, ada),
    )
    titles = [item["title"] for item in inbox(client, auth_header(ben))]
    assert titles == ["Ada Lovelace made you an owner of “Ops”", "Ada Lovelace added you to “Ops”"]
    titles = [item["title"] for item in inbox(client, auth_header(cy))]
    assert titles == ["Ada Lovelace made you a moderator of “Ops”"]
    assert inbox(client, auth_header(ada)) == []


def test_a_ready_digest_reaches_its_person_once_with_its_sections(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    ben = new_id()
    until = utcnow().replace(microsecond=0)
    digest = DigestReady(
        user_id=ben,
        period="daily",
        since=until - timedelta(days=1),
        until=until,
        total_items=1,
        sections=[
            DigestReadySection(
                reason="tag",
                label="#plutus",
                items=[
                    DigestReadyItem(
                        content_id=new_id(), kind="post", title="T", excerpt="e", why="w"
                    )
                ],
            )
        ],
    )
    publish(digest, digest)
    [told] = inbox(client, auth_header(ben))
    assert told["kind"] == "digest"
    assert told["url"].startswith("/api/v1/digests/me?period=daily&until=")
    assert told["details"]["sections"][0]["label"] == "#plutus"


def test_old_content_such_as_an_import_of_history_notifies_nobody(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    ada, ada_registered = person("ada")
    ben, ben_registered = person("ben")
    publish(ada_registered, ben_registered, content(author=ada, mentions=("ben",), hours_ago=48))
    assert inbox(client, auth_header(ben)) == []
