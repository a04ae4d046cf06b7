"""An unanswered question escalates on a schedule driven here by a controllable clock.

`escalate(client, after=...)` runs one tick of the schedule as if that much time had
passed; rounds, caps and the once-only claim live in the database, so two engines on one
database (two replicas) and a restarted service behave as one.
"""

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.search.engines import engine_factory
from services.search.routing.escalation import escalate_due
from services.search.routing.models import RoutingRound
from services.search.routing.service import RoundReport
from services.search.routing.settings import RoutingSettings
from services.search.tests.conftest import People, search_ids
from services.search.tests.routing.conftest import (
    ROUTED_SUBJECT,
    Publisher,
    StartSearch,
    answer,
    app_of,
    asked_in_round,
    db,
    escalate,
    evidence,
    group_with,
    members_known,
    question,
    routed_question,
    routing,
    settle,
)
from shared.db import make_engine
from shared.events.contracts import (
    AnswerDeleted,
    FollowCreated,
    FollowDeleted,
    QuestionClosed,
    QuestionDeleted,
)
from shared.events.outbox import OutboxMessage
from shared.ids import new_id, utcnow
from shared.testing.backends import postgres_url
from shared.testing.fixtures import wait_for

ONE_ENGINE = pytest.mark.parametrize(
    "engine_name", ["opensearch" if postgres_url() else "embedded"], indirect=True
)
DAY = timedelta(hours=24)
MINUTE = timedelta(minutes=1)


def ranked_experts(count: int) -> list[Any]:
    """`count` people, the first knowing most about #plutus."""
    return [new_id() for _ in range(count)]


def expert_posts(experts: list[Any], tag: str = "plutus") -> list[Any]:
    return [item for rank, user in enumerate(experts) for item in evidence(user, 9 - rank, tag=tag)]


def routed_subjects(client: TestClient) -> list[str]:
    with Session(db(client)) as session:
        rows = session.exec(
            select(OutboxMessage).where(col(OutboxMessage.payload).contains("question.routed"))
        ).all()
    return [row.subject for row in rows]


def wait_routed(client: TestClient, question_id: Any) -> None:
    wait_for(lambda: routed_question(client, question_id) is not None, timeout=20)


def test_an_unanswered_question_goes_to_the_next_three_then_to_tag_followers(
    client: TestClient, publish: Publisher, people: People
) -> None:
    asker, follower, unfollowed = new_id(), new_id(), new_id()
    experts = ranked_experts(7)
    settle(client, people.header(asker), publish, *expert_posts(experts))
    publish(
        FollowCreated(follower_id=follower, target_type="tag", target="plutus"),
        FollowCreated(follower_id=unfollowed, target_type="tag", target="plutus"),
        FollowDeleted(follower_id=unfollowed, target_type="tag", target="plutus"),
        FollowCreated(follower_id=new_id(), target_type="tag", target="marlowe"),
    )
    asked = question(asker, tags=["plutus"])
    publish(asked)
    wait_routed(client, asked.content_id)

    assert escalate(client, after=DAY - MINUTE) == []
    [second] = escalate(client, after=DAY + MINUTE)
    assert (second.round, second.asked) == (2, experts[3:6])
    assert escalate(client, after=DAY + 2 * MINUTE) == []  # the next round waits a day more
    [third] = escalate(client, after=2 * DAY + 2 * MINUTE)
    # Experts[6] was never asked, but after two rounds it is the people who follow the tag.
    assert (third.round, third.asked) == (3, [follower])
    assert escalate(client, after=10 * DAY) == []  # nothing after the last round

    body = routing(client, people.header(asker), asked.content_id)
    assert [r["round"] for r in body["rounds"]] == [1, 2, 3]
    assert asked_in_round(body, 1) == [str(user) for user in experts[:3]]
    [last] = body["rounds"][2]["people"]
    assert last["reason"] == (
        "you were asked because you follow #plutus and it is still unanswered after 2 rounds"
    )
    assert routed_subjects(client) == [ROUTED_SUBJECT] * 7


@ONE_ENGINE
def test_a_group_question_goes_to_the_owner_after_two_rounds_on_the_groups_delay(
    client: TestClient, publish: Publisher, people: People
) -> None:
    asker, owner = new_id(), new_id()
    # Six members who know fill the two ranked rounds; the owner has membership alone.
    knowers = [new_id() for _ in range(6)]
    group_id, group_events = group_with(owner, asker, *knowers)
    publish(*group_events)
    wait_for(lambda: members_known(client, group_id, 8))
    settle(
        client,
        people.header(asker),
        publish,
        *[
            item
            for knower in knowers
            for item in evidence(knower, 2, tag="hydra", group_id=group_id)
        ],
    )
    response = client.put(
        f"/routing/groups/{group_id}",
        json={"escalation_hours": 2},
        headers=people.header(owner),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"group_id": str(group_id), "escalation_hours": 2.0}
    asked = question(asker, tags=["hydra"], group_id=group_id)
    publish(asked)
    wait_routed(client, asked.content_id)

    hour = timedelta(hours=1)
    assert escalate(client, after=hour) == []
    [second] = escalate(client, after=2 * hour + MINUTE)
    assert second.round == 2 and set(second.asked) <= set(knowers) and len(second.asked) == 3
    [third] = escalate(client, after=4 * hour + 2 * MINUTE)
    assert (third.round, third.asked) == (3, [owner])
    body = routing(client, people.header(asker), asked.content_id)
    assert body["rounds"][2]["people"][0]["reason"] == (
        "you were asked because you own Core team and it is still unanswered after 2 rounds"
    )


@ONE_ENGINE
def test_changing_a_groups_delay_reschedules_its_waiting_questions(
    client: TestClient, publish: Publisher, people: People
) -> None:
    asker, owner, member = new_id(), new_id(), new_id()
    group_id, group_events = group_with(owner, asker, member)
    publish(*group_events)
    wait_for(lambda: members_known(client, group_id, 3))
    asked = question(asker, tags=["hydra"], group_id=group_id)
    publish(asked)
    wait_routed(client, asked.content_id)
    assert escalate(client, after=timedelta(hours=5)) == []
    response = client.put(
        f"/routing/groups/{group_id}", json={"escalation_hours": 4}, headers=people.header(owner)
    )
    assert response.status_code == 200
    [report] = escalate(client, after=timedelta(hours=5))
    assert report.round == 2


@ONE_ENGINE
def test_only_a_groups_owner_or_an_admin_sets_its_delay(
    client: TestClient, publish: Publisher, people: People, admin_header: dict[str, str]
) -> None:
    owner, member, outsider = new_id(), new_id(), new_id()
    group_id, group_events = group_with(owner, member)
    open_id, open_events = group_with(owner, member, visibility="open")
    publish(*group_events, *open_events)
    wait_for(lambda: members_known(client, group_id, 2) and members_known(client, open_id, 2))
    path = f"/routing/groups/{group_id}"
    body = {"escalation_hours": 6}
    assert client.put(path, json=body, headers=people.header(member)).status_code == 403
    assert client.put(path, json=body, headers=people.header(owner)).status_code == 200
    # A private group stays hidden from non-members, admins included.
    assert client.put(path, json=body, headers=people.header(outsider)).status_code == 404
    assert client.put(path, json=body, headers=admin_header).status_code == 404
    open_path = f"/routing/groups/{open_id}"
    assert client.put(open_path, json=body, headers=people.header(outsider)).status_code == 403
    assert client.put(open_path, json=body, headers=admin_header).status_code == 200
    unknown = f"/routing/groups/{new_id()}"
    assert client.put(unknown, json=body, headers=admin_header).status_code == 404
    for bad in ({"escalation_hours": 0}, {"escalation_hours": -1}, {}, {"hours": 3}):
        refused = client.put(path, json=bad, headers=people.header(owner))
        assert refused.status_code == 422, bad
        assert refused.headers["content-type"] == "application/problem+json"
    assert client.put(path, json=body).status_code == 401


@ONE_ENGINE
def test_answered_closed_and_deleted_questions_stop_escalating(
    client: TestClient, publish: Publisher, people: People
) -> None:
    asker, expert, stranger = new_id(), new_id(), new_id()
    settle(client, people.header(asker), publish, *evidence(expert, 2, tag="plutus"))
    answered, closed, deleted, waiting = (question(asker, tags=["plutus"]) for _ in range(4))
    publish(answered, closed, deleted, waiting)
    for each in (answered, closed, deleted, waiting):
        wait_routed(client, each.content_id)
    # Answered by someone nobody asked: still answered.
    publish(
        answer(answered, stranger),
        QuestionClosed(
            question_id=closed.content_id,
            group_id=None,
            visibility="public",
            duplicate_of=waiting.content_id,
            closed_by=asker,
            version=2,
        ),
        QuestionDeleted(
            content_id=deleted.content_id,
            kind="question",
            author_id=asker,
            group_id=None,
            visibility="public",
            version=2,
            deleted_at=utcnow(),
        ),
    )
    reports = escalate(client, after=DAY + MINUTE)
    assert [report.question_id for report in reports] == [waiting.content_id]
    statuses = {
        each.content_id: routed_question(client, each.content_id).status  # type: ignore[union-attr]
        for each in (answered, closed, deleted, waiting)
    }
    assert statuses == {
        answered.content_id: "answered",
        closed.content_id: "closed",
        deleted.content_id: "deleted",
        waiting.content_id: "open",
    }


@ONE_ENGINE
def test_nobody_is_asked_more_than_k_times_a_day(
    start_search: StartSearch, publish_events: Any, people: People
) -> None:
    with start_search(max_asks_per_day="1") as client:
        publish = Publisher(client, publish_events)
        asker = new_id()
        experts = ranked_experts(6)
        settle(client, people.header(asker), publish, *expert_posts(experts))
        first, second = question(asker, tags=["plutus"]), question(asker, tags=["plutus"])
        publish(first)
        wait_routed(client, first.content_id)
        publish(second)
        wait_routed(client, second.content_id)
        headers = people.header(asker)
        assert asked_in_round(routing(client, headers, first.content_id), 1) == [
            str(user) for user in experts[:3]
        ]
        # The best three were asked once today already: the second question goes on.
        assert asked_in_round(routing(client, headers, second.content_id), 1) == [
            str(user) for user in experts[3:]
        ]
        # A day later the cap has passed: each question's next round finds the others.
        reports = escalate(client, after=DAY + MINUTE, max_asks_per_day=1)
        asked = {report.question_id: report.asked for report in reports}
        assert asked == {first.content_id: experts[3:], second.content_id: experts[:3]}


def rounds_recorded(client: TestClient) -> list[tuple[Any, int]]:
    with Session(db(client)) as session:
        rows = session.exec(select(RoutingRound)).all()
    return sorted((row.question_id, row.round) for row in rows)


@ONE_ENGINE
def test_two_replicas_escalate_a_question_once(
    client: TestClient, publish: Publisher, people: People
) -> None:
    asker = new_id()
    experts = ranked_experts(6)
    settle(client, people.header(asker), publish, *expert_posts(experts))
    asked = question(asker, tags=["plutus"])
    publish(asked)
    wait_routed(client, asked.content_id)

    # Two replicas: two engines (connection pools) on the one database, ticking together.
    settings = app_of(client).state.settings
    replicas = [make_engine(settings.database_url) for _ in range(2)]
    start = threading.Barrier(len(replicas))
    results: list[list[RoundReport]] = []
    errors: list[BaseException] = []
    now = utcnow() + DAY + MINUTE

    def tick(engine: Any) -> None:
        try:
            start.wait(timeout=10)
            results.append(
                escalate_due(
                    engine=engine,
                    engines=engine_factory(settings),
                    now=now,
                    settings=RoutingSettings(),
                    semantic=app_of(client).state.semantic,
                )
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=(engine,)) for engine in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for engine in replicas:
        engine.dispose()
    assert errors == []
    assert sorted(len(reports) for reports in results) == [0, 1]
    assert rounds_recorded(client) == [(asked.content_id, 1), (asked.content_id, 2)]
    assert len(routed_subjects(client)) == 6


@ONE_ENGINE
def test_the_schedule_survives_a_restart(
    start_search: StartSearch, publish_events: Any, people: People
) -> None:
    asker = new_id()
    experts = ranked_experts(6)
    # A delay of a third of a second, and no schedule in the first life of the service.
    with start_search(escalation_hours="0.0001") as client:
        publish = Publisher(client, publish_events)
        settle(client, people.header(asker), publish, *expert_posts(experts))
        asked = question(asker, tags=["plutus"])
        publish(asked)
        wait_routed(client, asked.content_id)
    # Down for the whole delay; back up with the schedule running every 0.1 s.
    with start_search(schedule_enabled="true", tick_seconds="0.1") as client:
        body = wait_for(
            lambda: len(routing(client, people.header(asker), asked.content_id)["rounds"]) >= 3
            and routing(client, people.header(asker), asked.content_id),
            timeout=20,
        )
        assert asked_in_round(body, 2) == [str(user) for user in experts[3:]]
        task = app_of(client).state.routing_schedule
        assert task is not None and not task.done()
    assert task.cancelled()
    with Session(db(client)) as session:
        payloads = [
            json.loads(row.payload)["data"]["round"]
            for row in session.exec(select(OutboxMessage)).all()
            if row.subject == ROUTED_SUBJECT
        ]
    assert sorted(payloads) == [1, 1, 1, 2, 2, 2]


@ONE_ENGINE
def test_deleting_the_only_answer_lets_the_question_escalate_again(
    client: TestClient, publish: Publisher, people: People
) -> None:
    asker, stranger = new_id(), new_id()
    experts = ranked_experts(6)
    settle(client, people.header(asker), publish, *expert_posts(experts))
    asked = question(asker, tags=["plutus"])
    publish(asked)
    wait_routed(client, asked.content_id)
    reply = answer(asked, stranger)
    publish(reply)

    def status() -> str | None:
        stored = routed_question(client, asked.content_id)
        return stored.status if stored is not None else None

    # The answer and its deletion arrive through the bus: wait for each to be applied, in
    # routing and in the index (a deleted answer still searchable would make its author an
    # expert for the next round; OpenSearch shows a deletion only after its refresh).
    wait_for(lambda: status() not in (None, "open"))
    wait_for(lambda: search_ids(client, people.header(asker), "redeemer"), timeout=20)
    assert escalate(client, after=DAY + MINUTE) == []

    publish(
        AnswerDeleted(
            content_id=reply.content_id,
            kind="answer",
            author_id=stranger,
            group_id=None,
            visibility="public",
            version=2,
            deleted_at=utcnow(),
        )
    )
    wait_for(lambda: status() == "open")
    wait_for(lambda: not search_ids(client, people.header(asker), "redeemer"), timeout=20)
    [report] = escalate(client, after=DAY + MINUTE)
    assert (report.round, report.asked) == (2, experts[3:6])
