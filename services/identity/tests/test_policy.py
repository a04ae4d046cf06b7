"""The password policy and display names, at registration, profile change and import."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.identity.policy import common_passwords, display_name_problem, password_problem
from services.identity.tests.test_routes import bearer, identity_app, register
from shared.testing.fixtures import ServiceClientFactory


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    with service_client(identity_app, name="identity") as test_client:
        yield test_client


def signup(client: TestClient, password: str, display_name: str = "Ada") -> dict[str, Any]:
    response = client.post(
        "/auth/register",
        json={
            "handle": "lovelace",
            "email": "countess@example.org",
            "password": password,
            "display_name": display_name,
        },
    )
    return {"status": response.status_code, **response.json()}


def test_the_common_password_list_comes_from_the_package() -> None:
    listed = common_passwords()
    assert len(listed) == 30_000
    assert {"password", "12345678", "trustno1"} <= listed


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "at least 8 characters"),
        ("12345678", "most common"),
        ("PassWord1", "most common"),
        ("iloveyou", "most common"),
        ("lovelace-forever", "your handle"),
        ("LOVELACE rules!", "your handle"),
        ("countess of computing", "e-mail"),
    ],
)
def test_passwords_the_policy_refuses_are_422_saying_why(
    client: TestClient, password: str, reason: str
) -> None:
    refused = signup(client, password)
    assert refused["status"] == 422, refused
    text = refused["detail"] + " ".join(error["msg"] for error in refused.get("errors") or [])
    assert reason in text, refused


def test_a_long_uncommon_password_is_accepted(client: TestClient) -> None:
    assert signup(client, "analytical engine notes")["status"] == 201


def test_the_rule_on_personal_parts_ignores_very_short_ones() -> None:
    assert password_problem("jo the great one", handle="jo", email="jo@example.org") is None


@pytest.mark.parametrize(
    "name",
    [
        "Ada\u202eecalevol",  # right-to-left override
        "Ada\u200b",  # zero-width space
        "\u2066Ada\u2069",  # isolates
        "Ada\x07",  # a control character
        "\u3164",  # a Hangul filler: looks blank
        "   ",
    ],
)
def test_display_names_refuse_invisible_and_bidirectional_characters(
    client: TestClient, name: str
) -> None:
    refused = signup(client, "analytical engine notes", display_name=name)
    assert refused["status"] == 422, refused
    assert refused["errors"][0]["loc"] == ["body", "display_name"]
    assert display_name_problem(name) is not None


def test_a_profile_change_refuses_them_too_and_keeps_ordinary_names(client: TestClient) -> None:
    ada = register(client, "ada")
    refused = client.patch("/users/me", json={"display_name": "Ada\u202e"}, headers=bearer(ada))
    assert refused.status_code == 422
    for name in ("Zoë Ñandú", "李小龙", "Ada Lovelace 👩‍💻".replace("\u200d", "")):
        accepted = client.patch("/users/me", json={"display_name": name}, headers=bearer(ada))
        assert accepted.status_code == 200, accepted.text
