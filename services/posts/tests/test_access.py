"""Visibility decisions, and the read-your-writes confirmation with identity over HTTP."""

from collections.abc import Callable, Iterator
from uuid import UUID

import httpx
import pytest
from fastapi.testclient import TestClient

from services.posts.access import (
    HIDDEN,
    UNAVAILABLE,
    GroupView,
    IdentityAnswer,
    IdentityGroups,
    check_may_post,
    item_visibility,
    needs_confirmation,
    resolve_group_view,
)
from services.posts.main import create_app
from services.posts.tests.conftest import IdentityStub, User, is_member
from shared.errors import Forbidden, NotFound
from shared.ids import new_id
from shared.testing.fixtures import ServiceClientFactory

MEMBER_PRIVATE = GroupView("private", is_member=True)
OUTSIDER_OPEN = GroupView("open", is_member=False)
OUTSIDER_PRIVATE = GroupView("private", is_member=False)


# --- pure decisions -------------------------------------------------------------------


def test_only_a_refusal_is_confirmed_with_identity() -> None:
    assert needs_confirmation(None)
    assert needs_confirmation(OUTSIDER_OPEN)
    assert not needs_confirmation(MEMBER_PRIVATE)


def test_identity_answer_overrides_the_lagging_projection() -> None:
    found = IdentityAnswer("found", MEMBER_PRIVATE)
    assert resolve_group_view(local=None, answer=found) == MEMBER_PRIVATE
    assert resolve_group_view(local=OUTSIDER_PRIVATE, answer=found) == MEMBER_PRIVATE
    assert resolve_group_view(local=OUTSIDER_PRIVATE, answer=HIDDEN) is None


def test_unreachable_identity_leaves_the_projection_answer() -> None:
    assert resolve_group_view(local=OUTSIDER_OPEN, answer=UNAVAILABLE) == OUTSIDER_OPEN
    assert resolve_group_view(local=None, answer=UNAVAILABLE) is None


def test_posting_needs_membership_and_hides_private_groups() -> None:
    group_id = new_id()
    assert check_may_post(MEMBER_PRIVATE, group_id) == MEMBER_PRIVATE
    with pytest.raises(Forbidden):
        check_may_post(OUTSIDER_OPEN, group_id)
    with pytest.raises(NotFound):
        check_may_post(OUTSIDER_PRIVATE, group_id)
    with pytest.raises(NotFound):
        check_may_post(None, group_id)


def test_items_are_private_only_in_private_groups() -> None:
    assert item_visibility(None) == "public"
    assert item_visibility(GroupView("open", is_member=True)) == "public"
    assert item_visibility(MEMBER_PRIVATE) == "private"


# --- identity over real HTTP ----------------------------------------------------------


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def test_identity_client_forwards_the_callers_token_and_reads_the_answer(
    identity_stub: IdentityStub, http: httpx.Client
) -> None:
    group_id = new_id()
    identity_stub.answer(group_id, "private", is_member=True, version=3)
    identity = IdentityGroups(client=http, base_url=identity_stub.url, authorization="Bearer t")
    assert identity.ask(group_id) == IdentityAnswer("found", MEMBER_PRIVATE, membership_version=3)
    assert identity.ask(new_id()) == HIDDEN
    assert identity_stub.seen_authorization == ["Bearer t", "Bearer t"]


def test_identity_client_reports_unreachable_identity_as_unavailable(
    unreachable_identity_url: str, http: httpx.Client
) -> None:
    identity = IdentityGroups(client=http, base_url=unreachable_identity_url, authorization=None)
    assert identity.ask(new_id()) == UNAVAILABLE


@pytest.fixture
def posts_with_identity(
    service_client: ServiceClientFactory, identity_stub: IdentityStub
) -> Iterator[TestClient]:
    with service_client(create_app, name="posts", identity_url=identity_stub.url) as client:
        yield client


def test_member_of_a_group_the_projection_has_not_heard_of_can_post_and_read_at_once(
    posts_with_identity: TestClient, identity_stub: IdentityStub, user: Callable[[str], User]
) -> None:
    ada = user("ada")
    group_id = new_id()
    identity_stub.answer(group_id, "private", is_member=True)
    response = posts_with_identity.post(
        "/posts", json={"body": "first!", "group_id": str(group_id)}, headers=ada.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["visibility"] == "private"
    assert identity_stub.seen_authorization == [ada.headers["Authorization"]]
    # What identity confirmed is remembered: reading back needs no second round trip.
    assert is_member(posts_with_identity, group_id, ada.id)
    read = posts_with_identity.get(f"/posts/{response.json()['id']}", headers=ada.headers)
    assert read.status_code == 200
    assert len(identity_stub.seen_authorization) == 1


def test_identity_saying_not_a_member_is_still_a_refusal(
    posts_with_identity: TestClient, identity_stub: IdentityStub, user: Callable[[str], User]
) -> None:
    eve = user("eve")
    open_group, private_group = new_id(), new_id()
    identity_stub.answer(open_group, "open", is_member=False)
    forbidden = posts_with_identity.post(
        "/posts", json={"body": "hi", "group_id": str(open_group)}, headers=eve.headers
    )
    assert forbidden.status_code == 403
    hidden = posts_with_identity.post(
        "/posts", json={"body": "hi", "group_id": str(private_group)}, headers=eve.headers
    )
    assert hidden.status_code == 404
    assert not is_member(posts_with_identity, UUID(str(open_group)), eve.id)


def test_the_owner_identity_names_may_accept_before_the_projection_hears_of_the_group(
    posts_with_identity: TestClient, identity_stub: IdentityStub, user: Callable[[str], User]
) -> None:
    owner, asker, helper = user("olga"), user("ann"), user("hal")
    group_id = new_id()
    identity_stub.answer(group_id, "private", is_member=True, owner_id=owner.id)
    question = posts_with_identity.post(
        "/questions",
        json={"title": "t", "body": "b", "group_id": str(group_id)},
        headers=asker.headers,
    ).json()
    reply = posts_with_identity.post(
        f"/questions/{question['id']}/answers", json={"body": "b"}, headers=helper.headers
    ).json()
    path = f"/questions/{question['id']}/accepted-answer"
    refused = posts_with_identity.put(path, json={"answer_id": reply["id"]}, headers=helper.headers)
    assert refused.status_code == 403
    accepted = posts_with_identity.put(path, json={"answer_id": reply["id"]}, headers=owner.headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["accepted_answer_id"] == reply["id"]
