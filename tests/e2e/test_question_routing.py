"""Issue 8 end to end, through the gateway only: ask, see similar, route, answer, accept, escalate.

People with a history on a topic answer an earlier question; a new question on the same
topic shows it as similar while being written, is routed to three of them with the
reason, one answers and the asker accepts. A group question nobody answers escalates to
the next people once its group's delay (a few seconds here) has passed. An outsider never
sees the group's question: not as a question, a similar one, a routing, or evidence.
"""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from deploy.launch import Platform
from tests.e2e.conftest import started_platform
from tests.e2e.test_knowledge_flow import eventually, register

Json = dict[str, Any]
# The escalation schedule ticks every half second; a group's delay is set to 3.6 s below.
ROUTING_ENV = {"KNOWFLOW_ROUTING_TICK_SECONDS": "0.5"}
GROUP_DELAY_HOURS = 0.001


@pytest.fixture(scope="module")
def routing_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with started_platform(tmp_path_factory, ROUTING_ENV) as running:
        yield running


@pytest.fixture(scope="module")
def api(routing_platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{routing_platform.gateway_url}/api/v1", timeout=30.0) as client:
        yield client


def ask(api: httpx.Client, who: Json, **question: Any) -> Json:
    response = api.post("/questions", headers=who["headers"], json=question)
    assert response.status_code == 201, response.text
    created: Json = response.json()
    return created


def answer(api: httpx.Client, who: Json, question_id: str, body: str) -> Json:
    response = api.post(
        f"/questions/{question_id}/answers", headers=who["headers"], json={"body": body}
    )
    assert response.status_code == 201, response.text
    created: Json = response.json()
    return created


def routing(api: httpx.Client, who: Json, question_id: str) -> httpx.Response:
    return api.get(f"/routing/questions/{question_id}", headers=who["headers"])


def rounds_once(api: httpx.Client, who: Json, question_id: str, count: int) -> list[Json]:
    """The question's routing rounds once there are `count` of them."""

    def check() -> list[Json] | None:
        response = routing(api, who, question_id)
        rounds: list[Json] = response.json()["rounds"] if response.status_code == 200 else []
        return rounds if len(rounds) >= count else None

    rounds: list[Json] = eventually(check, timeout=40.0)
    return rounds


def similar_ids(api: httpx.Client, who: Json, title: str) -> list[str]:
    response = api.post("/questions/similar", headers=who["headers"], json={"title": title})
    assert response.status_code == 200, response.text
    return [item["question_id"] for item in response.json()["items"]]


@pytest.fixture(scope="module")
def people(api: httpx.Client) -> dict[str, Json]:
    handles = ["asa", "eve", "ed", "emma", "finn", "gus", "olga"]
    return {handle: register(api, handle) for handle in handles}


@pytest.fixture(scope="module")
def history(api: httpx.Client, people: dict[str, Json]) -> Json:
    """An earlier question on Plutus validators, answered by three people who know."""
    earlier = ask(
        api,
        people["finn"],
        title="How do I compile a Plutus validator script?",
        body="My validator script fails to compile with a type error in the datum.",
        tags=["plutus"],
    )
    earlier["answer_by"] = {
        people[handle]["user"]["id"]: answer(
            api,
            people[handle],
            earlier["id"],
            f"{handle}: compile the Plutus validator with the right datum type and PlutusTx.",
        )["id"]
        for handle in ("eve", "ed", "emma")
    }
    # The index follows the bus: wait until the earlier question is searchable and its
    # answers count as evidence (OpenSearch shows each write only after its refresh).
    eventually(
        lambda: earlier["id"]
        in similar_ids(api, people["asa"], "compile a Plutus validator script")
    )
    eventually(lambda: set(earlier["answer_by"]) <= set(expert_ids(api, people["asa"], "plutus")))
    return earlier


def expert_ids(api: httpx.Client, who: Json, tag: str) -> list[str]:
    response = api.get("/experts", params={"topic": tag}, headers=who["headers"])
    assert response.status_code == 200, response.text
    return [expert["user_id"] for expert in response.json()["experts"]]


def test_ask_see_similar_routed_to_three_one_answers_and_is_accepted(
    api: httpx.Client, people: dict[str, Json], history: Json
) -> None:
    asa = people["asa"]
    title = "Why does my Plutus validator not compile?"
    # While typing the title, the earlier question is suggested.
    assert history["id"] in similar_ids(api, asa, title)

    question = ask(
        api,
        asa,
        title=title,
        body="Compiling the validator script gives a datum type error.",
        tags=["plutus"],
    )
    [first] = rounds_once(api, asa, question["id"], 1)
    asked = [person["user_id"] for person in first["people"]]
    knowers = {people[handle]["user"]["id"] for handle in ("eve", "ed", "emma")}
    assert set(asked) == knowers  # the three who answered the earlier question
    for person in first["people"]:
        assert person["status"] == "asked"
        assert person["reason"].startswith("you were asked because")
        # Their evidence is their answer to the earlier question.
        own_answer = history["answer_by"][person["user_id"]]
        assert own_answer in {item["content_id"] for item in person["evidence"]}

    by_id = {people[handle]["user"]["id"]: people[handle] for handle in people}
    helper = by_id[asked[0]]
    reply = answer(api, helper, question["id"], "Use the datum type the validator expects.")
    accepted = api.put(
        f"/questions/{question['id']}/accepted-answer",
        headers=asa["headers"],
        json={"answer_id": reply["id"]},
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["accepted_answer_id"] == reply["id"]

    def helper_answered() -> bool:
        [round_] = routing(api, asa, question["id"]).json()["rounds"]
        status = {person["user_id"]: person["status"] for person in round_["people"]}
        return status[asked[0]] == "answered"

    eventually(helper_answered)
    listed = api.get(
        "/questions", headers=asa["headers"], params={"tag": "plutus", "unaccepted": "true"}
    )
    assert listed.status_code == 200, listed.text
    assert question["id"] not in {item["id"] for item in listed.json()["items"]}
    # Only the asker reads the routing; someone else who may read the question gets a 403.
    assert routing(api, people["olga"], question["id"]).status_code == 403


def test_an_unanswered_group_question_escalates_and_stays_hidden_from_an_outsider(
    api: httpx.Client, people: dict[str, Json], history: Json
) -> None:
    asa, olga = people["asa"], people["olga"]
    created = api.post(
        "/groups",
        headers=asa["headers"],
        json={"name": "Validators", "slug": "validators", "visibility": "private"},
    )
    assert created.status_code == 201, created.text
    group_id = created.json()["id"]
    for handle in ("eve", "ed", "emma", "finn", "gus"):
        added = api.post(
            f"/groups/{group_id}/members",
            headers=asa["headers"],
            json={"user_id": people[handle]["user"]["id"]},
        )
        assert added.status_code == 201, added.text

    def delay_set() -> bool:
        response = api.put(
            f"/routing/groups/{group_id}",
            headers=asa["headers"],
            json={"escalation_hours": GROUP_DELAY_HOURS},
        )
        return response.status_code == 200  # once search has heard of the group

    eventually(delay_set)
    title = "Where is the Plutus validator budget set in our private cluster?"
    question = ask(
        api,
        asa,
        title=title,
        body="The validator hits its execution budget on our private cluster.",
        tags=["plutus"],
        group_id=group_id,
    )
    first, second = rounds_once(api, asa, question["id"], 2)[:2]
    asked_first = {person["user_id"] for person in first["people"]}
    asked_second = {person["user_id"] for person in second["people"]}
    assert len(asked_first) == 3
    assert asked_second and not asked_first & asked_second  # the next people, not the same
    members = {people[handle]["user"]["id"] for handle in ("eve", "ed", "emma", "finn", "gus")}
    assert asked_first | asked_second <= members
    assert olga["user"]["id"] not in asked_first | asked_second

    # The outsider: no question, no suggestion, no routing, no evidence from the group.
    assert api.get(f"/questions/{question['id']}", headers=olga["headers"]).status_code == 404
    assert question["id"] not in similar_ids(api, olga, title)
    assert routing(api, olga, question["id"]).status_code == 404
    experts = api.get(
        "/experts", headers=olga["headers"], params={"q": title, "tag": "plutus", "limit": 20}
    )
    assert experts.status_code == 200, experts.text
    evidence = {
        item["content_id"] for person in experts.json()["experts"] for item in person["evidence"]
    }
    assert question["id"] not in evidence
    # A member does get it suggested.
    assert question["id"] in similar_ids(api, people["eve"], title)
