"""Single sign-on against the real test OpenID Provider (deploy/oidc): the rules and refusals."""

import json
import secrets
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.identity.accounts import deactivate
from services.identity.audit import AuditEntry, verify_chain
from services.identity.main import create_app
from services.identity.models import ExternalIdentity, Membership, User
from services.identity.oidc import OidcClient, PendingSignIn
from services.identity.tests.test_routes import bearer, identity_app, outbox_types, register
from shared.errors import Unauthorized
from shared.settings import OidcProvider, Settings
from shared.testing.backends import require_oidc_provider
from shared.testing.fixtures import ServiceClientFactory
from shared.testing.oidc import (
    OTHER_CLIENT_ID,
    OTHER_CLIENT_SECRET,
    provider_config,
    query_of,
    sign_in_at_provider,
)

PUBLIC_URL = "http://127.0.0.1"  # the provider accepts this loopback callback on any port
CALLBACK = f"{PUBLIC_URL}/api/v1/auth/oidc/test/callback"


@pytest.fixture
def issuer() -> str:
    return require_oidc_provider()


def make_client(service_client: ServiceClientFactory, issuer: str, **overrides: Any) -> Any:
    provider = provider_config(issuer, **overrides.pop("provider", {}))
    return service_client(
        identity_app,
        name="identity",
        public_url=PUBLIC_URL,
        oidc_providers=[provider],
        **overrides,
    )


@pytest.fixture
def client(service_client: ServiceClientFactory, issuer: str) -> Iterator[TestClient]:
    with make_client(service_client, issuer) as test_client:
        yield test_client


def fresh_login() -> str:
    return f"p{secrets.token_hex(5)}"


def start(client: TestClient) -> str:
    """The provider's authorization URL; the state cookie stays in the client's jar."""
    response = client.get("/auth/oidc/test/login", follow_redirects=False)
    assert response.status_code == 302, response.text
    assert "knowflow_oidc" in response.cookies
    return response.headers["location"]


def sso(client: TestClient, login: str, **tamper: str) -> httpx.Response:
    """The whole sign-in: redirect, the provider's login and consent, our callback."""
    callback = sign_in_at_provider(start(client), login=login, redirect_prefix=CALLBACK)
    params = query_of(callback) | tamper
    return client.get("/auth/oidc/test/callback", params=params)


def audit_actions(client: TestClient) -> list[str]:
    """Single sign-on's own entries (each sign-in also starts a session: `auth.signed_in`)."""
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        rows = session.exec(select(AuditEntry).order_by(col(AuditEntry.sequence))).all()
        return [row.action for row in rows if row.action.startswith("sso.")]


def set_groups(issuer: str, login: str, groups: list[str]) -> None:
    response = httpx.put(f"{issuer}/test/accounts/{login}/groups", content=json.dumps(groups))
    assert response.status_code == 204


def test_providers_are_listed_and_login_redirects_with_state_nonce_and_pkce(
    client: TestClient, issuer: str
) -> None:
    listed = client.get("/auth/oidc/providers").json()
    assert listed == [
        {"name": "test", "display_name": "test", "login_url": f"{CALLBACK[:-8]}login"}
    ]
    query = query_of(start(client))
    assert query["client_id"] == "knowflow" and query["redirect_uri"] == CALLBACK
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["state"] and query["nonce"] and "openid" in query["scope"].split()
    assert client.get("/auth/oidc/nope/login", follow_redirects=False).status_code == 404


def test_first_sign_in_creates_the_account_just_in_time(client: TestClient) -> None:
    login = fresh_login()
    response = sso(client, login)
    assert response.status_code == 200, response.text
    body = response.json()
    me = client.get("/users/me", headers=bearer(body)).json()
    assert me["email"] == f"{login}@example.org" and me["handle"] == login
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        user = session.exec(select(User).where(User.handle == login)).one()
        assert user.password_hash == "" and user.role == "member"
        link = session.exec(select(ExternalIdentity)).one()
        assert (link.user_id, link.subject) == (user.id, login)
        assert verify_chain(session)[1] is None
    assert "knowflow.user.registered.v1" in outbox_types(client)
    # The next sign-in finds the same account through the link.
    again = sso(client, login)
    assert again.status_code == 200 and again.json()["user"]["id"] == body["user"]["id"]
    assert audit_actions(client) == ["sso.account_created", "sso.sign_in", "sso.sign_in"]


def test_a_verified_email_links_the_existing_account(client: TestClient) -> None:
    login = fresh_login()
    account = register(client, login)  # registered as {login}@example.org, as at the provider
    response = sso(client, login)
    assert response.status_code == 200, response.text
    assert response.json()["user"]["id"] == account["user"]["id"]
    assert audit_actions(client)[-2:] == ["sso.linked", "sso.sign_in"]
    # The password still works: linking adds a way in, it takes none away.
    login_response = client.post("/auth/login", json={"login": login, "password": "correct horse"})
    assert login_response.status_code == 200


def test_an_unverified_email_neither_creates_nor_links(client: TestClient) -> None:
    response = sso(client, "mallory")
    assert response.status_code == 403, response.text
    assert "email_verified" in response.json()["detail"]
    # Nor does it take over the account that owns that address.
    register(client, "mallory")
    assert sso(client, "mallory").status_code == 403
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        assert session.exec(select(ExternalIdentity)).first() is None
        assert verify_chain(session)[1] is None
    assert audit_actions(client).count("sso.sign_in_failed") == 2


def test_a_deactivated_account_cannot_sign_in(client: TestClient) -> None:
    login = fresh_login()
    assert sso(client, login).status_code == 200
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        user = session.exec(select(User).where(User.handle == login)).one()
        deactivate(session, user, actor_id=None, actor_kind="system")
        session.commit()
    refused = sso(client, login)
    assert refused.status_code == 403 and "deactivated" in refused.json()["detail"]


def test_a_callback_with_another_state_or_no_cookie_is_refused(client: TestClient) -> None:
    forged = sso(client, fresh_login(), state="forged-state")
    assert forged.status_code == 400, forged.text
    assert forged.headers["content-type"].startswith("application/problem+json")
    # A state from somebody else's browser: the right state, but no cookie of ours.
    callback = sign_in_at_provider(start(client), login=fresh_login(), redirect_prefix=CALLBACK)
    client.cookies.clear()
    assert client.get("/auth/oidc/test/callback", params=query_of(callback)).status_code == 400
    assert audit_actions(client) == ["sso.sign_in_failed", "sso.sign_in_failed"]


def test_a_provider_error_and_a_replayed_code_are_refused(client: TestClient) -> None:
    callback = sign_in_at_provider(start(client), login=fresh_login(), redirect_prefix=CALLBACK)
    params = query_of(callback)
    assert client.get("/auth/oidc/test/callback", params=params).status_code == 200
    # The provider allows a code once; the cookie was spent too, so it is set again.
    start_cookie = client.get("/auth/oidc/test/login", follow_redirects=False).cookies
    client.cookies.update(start_cookie)
    replayed = client.get("/auth/oidc/test/callback", params=params)
    assert replayed.status_code == 400  # the new sign-in's state is not the old one's
    denied = client.get("/auth/oidc/test/callback", params={"error": "access_denied", "state": "x"})
    assert denied.status_code == 400


def code_flow(client_config: OidcProvider, *, login: str) -> tuple[str, PendingSignIn]:
    """An ID token the real provider issued to `client_config`, and the sign-in it is for."""
    relying_party = OidcClient(client_config, timeout=10, leeway=30)
    pending = PendingSignIn("test", secrets.token_urlsafe(16), secrets.token_urlsafe(16), "v" * 64)
    url = relying_party.authorization_url(pending, redirect_uri=CALLBACK)
    callback = sign_in_at_provider(url, login=login, redirect_prefix=CALLBACK)
    id_token = relying_party.exchange_code(
        code=query_of(callback)["code"], code_verifier=pending.code_verifier, redirect_uri=CALLBACK
    )
    return id_token, pending


def test_an_id_token_for_another_sign_in_nonce_is_refused(issuer: str) -> None:
    config = OidcProvider(**provider_config(issuer))
    id_token, pending = code_flow(config, login=fresh_login())
    ours = OidcClient(config, timeout=10, leeway=30)
    assert ours.check_id_token(id_token, nonce=pending.nonce)["aud"] == "knowflow"
    with pytest.raises(Unauthorized, match="nonce"):
        ours.check_id_token(id_token, nonce="another sign-in's nonce")


def test_an_id_token_for_another_audience_is_refused(issuer: str) -> None:
    other = OidcProvider(
        **provider_config(issuer, client_id=OTHER_CLIENT_ID, client_secret=OTHER_CLIENT_SECRET)
    )
    id_token, pending = code_flow(other, login=fresh_login())
    ours = OidcClient(OidcProvider(**provider_config(issuer)), timeout=10, leeway=30)
    with pytest.raises(Unauthorized, match=r"(?i)audience"):
        ours.check_id_token(id_token, nonce=pending.nonce)


def test_a_token_from_a_provider_configured_under_another_issuer_is_refused(
    issuer: str,
) -> None:
    config = OidcProvider(**provider_config(issuer))
    id_token, pending = code_flow(config, login=fresh_login())
    renamed = config.model_copy(update={"issuer": issuer.replace("127.0.0.1", "localhost")})
    with pytest.raises(Exception, match="another issuer"):
        OidcClient(renamed, timeout=10, leeway=30).check_id_token(id_token, nonce=pending.nonce)


def test_the_groups_claim_joins_and_leaves_mapped_groups(
    service_client: ServiceClientFactory, issuer: str
) -> None:
    group_map = {"eng": "engineering", "ops-team": "ops"}
    with make_client(service_client, issuer, provider={"group_map": group_map}) as client:
        owner = register(client, "owner")
        groups = {}
        for slug, visibility in (("engineering", "open"), ("ops", "private"), ("other", "open")):
            created = client.post(
                "/groups",
                json={"slug": slug, "name": slug.title(), "visibility": visibility},
                headers=bearer(owner),
            )
            groups[slug] = created.json()["id"]
        login = fresh_login()
        set_groups(issuer, login, ["eng", "ops-team", "unmapped"])
        first = sso(client, login)
        assert first.status_code == 200, first.text
        user_id = first.json()["user"]["id"]
        user_uuid = UUID(user_id)

        def member_of() -> set[str]:
            with Session(client.app.state.engine) as session:
                rows = session.exec(
                    select(Membership.group_id).where(col(Membership.user_id) == user_uuid)
                ).all()
            return {slug for slug, group_id in groups.items() if str(group_id) in map(str, rows)}

        assert member_of() == {"engineering", "ops"}
        # Joined by hand: not mapped, so the claim never takes it away.
        client.post(
            f"/groups/{groups['other']}/members",
            json={"user_id": user_id},
            headers=bearer(first.json()),
        )
        set_groups(issuer, login, ["eng"])
        assert sso(client, login).status_code == 200
        assert member_of() == {"engineering", "other"}
        types = outbox_types(client)
        assert types.count("knowflow.group.member_removed.v1") == 1
        actions = audit_actions(client)
        assert actions.count("sso.group_joined") == 2 and actions.count("sso.group_left") == 1


def test_password_sign_in_can_be_disabled(
    service_client: ServiceClientFactory, issuer: str
) -> None:
    with make_client(service_client, issuer, password_login_enabled=False) as client:
        body = {"handle": "pat", "email": "pat@example.org", "password": "correct horse"}
        refused = client.post("/auth/register", json={**body, "display_name": "Pat"})
        assert refused.status_code == 403
        assert "single sign-on" in refused.json()["detail"]
        login = client.post("/auth/login", json={"login": "pat", "password": "correct horse"})
        assert login.status_code == 403
        assert sso(client, fresh_login()).status_code == 200


def test_settings_read_providers_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "KNOWFLOW_OIDC_PROVIDERS",
        json.dumps([{"name": "corp", "issuer": "https://id.example.com", "client_id": "kf"}]),
    )
    monkeypatch.setenv("KNOWFLOW_PASSWORD_LOGIN_ENABLED", "false")
    settings = Settings()
    assert settings.oidc_providers[0].name == "corp" and not settings.password_login_enabled


@pytest.mark.parametrize(
    "providers",
    [
        [{"name": "a/b", "issuer": "https://id.example.com", "client_id": "kf"}],
        [{"name": "corp", "issuer": "https://a.example.com", "client_id": "kf"}] * 2,
    ],
)
def test_settings_refuse_bad_or_duplicate_provider_names(providers: list[dict[str, str]]) -> None:
    with pytest.raises(ValueError):
        Settings(oidc_providers=providers)


def test_create_app_without_providers_lists_none(service_client: ServiceClientFactory) -> None:
    with service_client(lambda settings, _v: create_app(settings), name="identity") as client:
        assert client.get("/auth/oidc/providers").json() == []
        assert client.get("/auth/oidc/test/login").status_code == 404
