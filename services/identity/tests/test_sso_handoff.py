"""Single sign-on's hand-off to a web front end: return_to, the one-time code, the exchange."""

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from services.identity.accounts import deactivate
from services.identity.audit import AuditEntry
from services.identity.models import AuthSession, SsoHandoff, User
from services.identity.oidc import check_return_to, with_query
from services.identity.tests.test_oidc import CALLBACK, fresh_login, make_client
from services.identity.tests.test_routes import bearer
from shared.errors import BadRequest
from shared.idempotency import IdempotencyRecord
from shared.ids import utcnow
from shared.testing.backends import require_oidc_provider
from shared.testing.fixtures import ServiceClientFactory
from shared.testing.oidc import query_of, sign_in_at_provider

OPEN_REDIRECTS = [
    "//evil.example",
    "https://evil.example",
    "/\\evil",
    "\\\\evil.example",
    "evil.example",
    "javascript:alert(1)",
    "",
    "/\t/evil.example",
    "/ok\nLocation: https://evil.example",
    "/%2F%2Fevil.example",
    "/%5Cevil",
    "/" + "a" * 2000,
]


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    with make_client(service_client, require_oidc_provider()) as test_client:
        yield test_client


def start(client: TestClient, return_to: str) -> str:
    response = client.get(
        "/auth/oidc/test/login", params={"return_to": return_to}, follow_redirects=False
    )
    assert response.status_code == 302, response.text
    return response.headers["location"]


def sso_back(
    client: TestClient, login: str, return_to: str, tamper: dict[str, str] | None = None
) -> httpx.Response:
    """A whole sign-in started with `return_to`: the callback's answer (not followed)."""
    callback = sign_in_at_provider(start(client, return_to), login=login, redirect_prefix=CALLBACK)
    params = query_of(callback) | (tamper or {})
    return client.get("/auth/oidc/test/callback", params=params, follow_redirects=False)


def code_of(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    return query_of(response.headers["location"])["sso_code"]


def exchange(client: TestClient, code: str, **headers: str) -> httpx.Response:
    return client.post("/auth/oidc/exchange", json={"code": code}, headers=headers)


def count(client: TestClient, model: type) -> int:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_the_callback_goes_back_to_return_to_with_a_code_traded_once(client: TestClient) -> None:
    login = fresh_login()
    back = sso_back(client, login, "/questions/42?tab=answers#top")
    assert back.status_code == 303, back.text
    location = urlsplit(back.headers["location"])
    assert (location.scheme, location.netloc, location.path) == ("", "", "/questions/42")
    assert location.fragment == "top" and location.query.startswith("tab=answers&sso_code=")
    assert back.headers["cache-control"] == "no-store"
    assert back.headers["referrer-policy"] == "no-referrer"
    assert "access_token" not in back.text and not back.content
    # The sign-in is over: its state cookie is cleared.
    assert 'knowflow_oidc=""' in back.headers["set-cookie"]
    code = code_of(back)
    assert len(code) >= 43  # 256 random bits, URL-safe base64
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = session.exec(select(SsoHandoff)).one()
        assert row.code_hash == hashlib.sha256(code.encode()).hexdigest() != code
        assert (row.method, row.provider) == ("sso", "test")
        assert row.expires_at - row.created_at == timedelta(seconds=60)

    traded = exchange(client, code)
    assert traded.status_code == 200, traded.text
    assert traded.headers["cache-control"] == "no-store"
    body = traded.json()
    assert body["refresh_token"] and body["session_id"]
    assert client.get("/users/me", headers=bearer(body)).json()["handle"] == login
    refreshed = client.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text

    again = exchange(client, code)
    assert again.status_code == 400, again.text
    assert again.headers["content-type"].startswith("application/problem+json")
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        entries = session.exec(select(AuditEntry).order_by(col(AuditEntry.sequence))).all()
        signed_in = [entry for entry in entries if entry.action == "auth.signed_in"]
        assert [entry.details["method"] for entry in signed_in] == ["sso"]
        assert [entry.action for entry in entries if entry.action.startswith("sso.")] == [
            "sso.account_created",
            "sso.sign_in",
        ]


def test_return_to_is_the_one_the_sign_in_started_with(client: TestClient) -> None:
    """The callback reads return_to from the signed cookie only, never from its own query."""
    back = sso_back(client, fresh_login(), "/home", {"return_to": "https://evil.example"})
    assert urlsplit(back.headers["location"]).path == "/home"
    assert exchange(client, code_of(back)).status_code == 200


@pytest.mark.parametrize("return_to", OPEN_REDIRECTS)
def test_a_return_to_off_this_site_is_refused(client: TestClient, return_to: str) -> None:
    response = client.get(
        "/auth/oidc/test/login", params={"return_to": return_to}, follow_redirects=False
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "return_to" in response.json()["detail"]
    assert "knowflow_oidc" not in response.cookies


@pytest.mark.parametrize(
    ("return_to", "expected"),
    [
        ("/", "/?sso_code=c"),
        ("/a?b=1&sso_code=planted&sso_error=x#f", "/a?b=1&sso_code=c#f"),
        ("/search?q=caf%C3%A9", "/search?q=caf%C3%A9&sso_code=c"),
        ("/café ok", "/caf%C3%A9%20ok?sso_code=c"),
        ("/a:b/c@d", "/a:b/c@d?sso_code=c"),
    ],
)
def test_the_code_is_added_to_return_to_as_a_local_ascii_url(return_to: str, expected: str) -> None:
    assert with_query(check_return_to(return_to), "sso_code", "c") == expected


def test_the_error_goes_into_the_query_encoded() -> None:
    assert with_query("/", "sso_error", "No & yes?") == "/?sso_error=No%20%26%20yes%3F"
    with pytest.raises(BadRequest):
        check_return_to("/" + "a" * 2000)
    assert check_return_to("/" + "a" * 1999) == "/" + "a" * 1999


def test_an_expired_or_unknown_code_is_refused(client: TestClient) -> None:
    code = code_of(sso_back(client, fresh_login(), "/"))
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = session.exec(select(SsoHandoff)).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.add(row)
        session.commit()
    expired = exchange(client, code)
    assert expired.status_code == 400 and "expired" in expired.json()["detail"]
    assert exchange(client, "made-up").status_code == 400
    assert exchange(client, "").status_code == 422


def test_a_deactivated_accounts_code_is_refused(client: TestClient) -> None:
    login = fresh_login()
    code = code_of(sso_back(client, login, "/"))
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        user = session.exec(select(User).where(User.handle == login)).one()
        deactivate(session, user, actor_id=None, actor_kind="system")
        session.commit()
    refused = exchange(client, code)
    assert refused.status_code == 403, refused.text
    assert "deactivated" in refused.json()["detail"]


def test_a_failed_sign_in_goes_back_to_return_to_with_a_reason(client: TestClient) -> None:
    # An e-mail the provider does not vouch for (mallory's is unverified there).
    back = sso_back(client, "mallory", "/welcome?x=1")
    assert back.status_code == 303, back.text
    query = query_of(back.headers["location"])
    assert query["x"] == "1" and "sso_code" not in query
    assert "email_verified" in query["sso_error"]
    # The provider's own refusal, for this browser's sign-in (its state).
    state = query_of(start(client, "/welcome"))["state"]
    denied = client.get(
        "/auth/oidc/test/callback",
        params={"error": "access_denied", "state": state},
        follow_redirects=False,
    )
    assert denied.status_code == 303, denied.text
    assert query_of(denied.headers["location"])["sso_error"] == (
        "The identity provider did not confirm the sign-in."
    )
    assert count(client, SsoHandoff) == 0
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        failed = session.exec(
            select(AuditEntry).where(AuditEntry.action == "sso.sign_in_failed")
        ).all()
        assert len(failed) == 2


def test_a_bad_state_is_a_problem_not_a_redirect(client: TestClient) -> None:
    """Without a state that checks out there is no return_to to trust."""
    back = sso_back(client, fresh_login(), "/welcome", {"state": "forged"})
    assert back.status_code == 400, back.text
    assert back.headers["content-type"].startswith("application/problem+json")
    assert "location" not in back.headers


def test_the_exchange_answer_is_never_stored_for_replay(client: TestClient) -> None:
    code = code_of(sso_back(client, fresh_login(), "/"))
    first = exchange(client, code, **{"Idempotency-Key": "sso-1"})
    again = exchange(client, code, **{"Idempotency-Key": "sso-1"})
    assert (first.status_code, again.status_code) == (200, 400)
    assert "idempotent-replayed" not in again.headers
    assert count(client, IdempotencyRecord) == 0


def test_without_return_to_the_callback_still_answers_tokens(client: TestClient) -> None:
    response = client.get("/auth/oidc/test/login", follow_redirects=False)
    callback = sign_in_at_provider(
        response.headers["location"], login=fresh_login(), redirect_prefix=CALLBACK
    )
    answer = client.get("/auth/oidc/test/callback", params=query_of(callback))
    assert answer.status_code == 200 and answer.json()["access_token"]
    assert count(client, SsoHandoff) == 0


def test_one_code_sent_four_times_at_once_starts_one_session(client: TestClient) -> None:
    """Exchanges racing with one code: the conditional UPDATE lets exactly one through (at
    most one on SQLite, whose single writer may ask the others to retry); never a 5xx."""
    code = code_of(sso_back(client, fresh_login(), "/"))
    barrier = threading.Barrier(4)

    def race(_: int) -> int:
        barrier.wait()
        return int(exchange(client, code).status_code)

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(race, range(4)))
    assert statuses.count(200) <= 1, statuses
    assert all(status in (200, 400, 409, 503) for status in statuses), statuses
    assert count(client, AuthSession) == statuses.count(200)
