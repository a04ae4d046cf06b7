"""Single sign-on end to end: a browser-less sign-in at the real OpenID Provider, through the gateway.

The authorization request, the provider's login and consent forms, the code back to the
callback through the gateway, the code exchange with PKCE: then the Knowflow token works.
"""

import json
from collections.abc import Iterator

import httpx
import pytest

from deploy.launch import Platform
from shared.testing.backends import require_oidc_provider
from shared.testing.oidc import provider_config, query_of, sign_in_at_provider
from tests.e2e.conftest import started_platform


@pytest.fixture(scope="module")
def sso_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    issuer = require_oidc_provider()
    environment = {
        "KNOWFLOW_OIDC_PROVIDERS": json.dumps(
            [provider_config(issuer, group_map={"engineering": "engineering"})]
        )
    }
    with started_platform(tmp_path_factory, extra_env=environment) as running:
        yield running


def test_sign_in_through_the_gateway_with_the_real_provider(sso_platform: Platform) -> None:
    api = f"{sso_platform.gateway_url}/api/v1"
    with httpx.Client(base_url=api, timeout=30.0) as browser:
        providers = browser.get("/auth/oidc/providers")
        assert providers.status_code == 200, providers.text
        login_url = providers.json()[0]["login_url"]
        assert login_url == f"{api}/auth/oidc/test/login"

        start = browser.get(login_url, follow_redirects=False)
        assert start.status_code == 302, start.text
        authorization = start.headers["location"]
        assert query_of(authorization)["redirect_uri"] == f"{api}/auth/oidc/test/callback"

        callback = sign_in_at_provider(
            authorization, login="alice", redirect_prefix=f"{api}/auth/oidc/test/callback"
        )
        # The browser comes back with the state cookie the login set (httpx kept it).
        signed_in = browser.get(callback)
        assert signed_in.status_code == 200, signed_in.text
        token = signed_in.json()["access_token"]

        me = browser.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json()["email"] == "alice@example.org"

        # The same callback again is refused: the code is spent and the cookie is gone.
        assert browser.get(callback).status_code == 400


def test_a_web_front_end_signs_in_with_return_to_and_a_one_time_code(
    sso_platform: Platform,
) -> None:
    """The hand-off a web app uses: back to its page with `sso_code`, traded once for tokens."""
    api = f"{sso_platform.gateway_url}/api/v1"
    callback_url = f"{api}/auth/oidc/test/callback"
    with httpx.Client(base_url=api, timeout=30.0) as browser:
        start = browser.get(
            "/auth/oidc/test/login",
            params={"return_to": "/questions?tab=new#list"},
            follow_redirects=False,
        )
        assert start.status_code == 302, start.text
        callback = sign_in_at_provider(
            start.headers["location"], login="bob", redirect_prefix=callback_url
        )
        back = browser.get(callback, follow_redirects=False)
        assert back.status_code == 303, back.text
        location = back.headers["location"]
        # A path on the gateway's (and so the web app's) own origin, the query and fragment kept.
        assert location.startswith("/questions?tab=new&sso_code=") and location.endswith("#list")
        code = query_of(location)["sso_code"]

    # The web app trades it server to server: no cookie, no token.
    exchanged = httpx.post(f"{api}/auth/oidc/exchange", json={"code": code}, timeout=30.0)
    assert exchanged.status_code == 200, exchanged.text
    token = exchanged.json()["access_token"]
    me = httpx.get(f"{api}/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=30.0)
    assert me.status_code == 200 and me.json()["email"] == "bob@example.org"

    replayed = httpx.post(f"{api}/auth/oidc/exchange", json={"code": code}, timeout=30.0)
    assert replayed.status_code == 400, replayed.text
    assert replayed.headers["content-type"].startswith("application/problem+json")

    spec = httpx.get(f"{sso_platform.gateway_url}/openapi.json", timeout=30.0).json()
    assert "security" not in spec["paths"]["/api/v1/auth/oidc/exchange"]["post"]


@pytest.mark.parametrize(
    "return_to", ["//evil.example", "https://evil.example", "/\\evil", "/%2F%2Fevil.example"]
)
def test_return_to_off_the_site_is_refused_through_the_gateway(
    sso_platform: Platform, return_to: str
) -> None:
    response = httpx.get(
        f"{sso_platform.gateway_url}/api/v1/auth/oidc/test/login",
        params={"return_to": return_to},
        follow_redirects=False,
        timeout=30.0,
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "location" not in response.headers
