"""Signing in at the test OpenID Provider (deploy/oidc/provider.js) with plain HTTP, no browser.

The provider's development interactions are two HTML forms (login, then consent) posted
back to `/interaction/{uid}`; the login names the account and any password passes.
"""

import re
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

CLIENT_ID = "knowflow"
CLIENT_SECRET = "knowflow-test-secret"
OTHER_CLIENT_ID = "other-app"
OTHER_CLIENT_SECRET = "other-app-secret"
FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')


def provider_config(issuer: str, **overrides: Any) -> dict[str, Any]:
    """A `KNOWFLOW_OIDC_PROVIDERS` entry for the test provider, named `test`."""
    return {
        "name": "test",
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ["openid", "email", "profile", "groups"],
        **overrides,
    }


def sign_in_at_provider(authorization_url: str, *, login: str, redirect_prefix: str) -> str:
    """Follow the provider from the authorization request to the redirect back to us.

    Returns the callback URL the provider redirects the browser to (with code and state).
    """
    with httpx.Client(timeout=30.0, follow_redirects=False) as browser:
        url = authorization_url
        for _ in range(20):
            if url.startswith(redirect_prefix):
                return url
            response = browser.get(url)
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                continue
            response.raise_for_status()
            match = FORM_ACTION.search(response.text)
            if match is None:
                raise AssertionError(f"no form at {url}: {response.text[:500]}")
            action = urljoin(url, match.group(1))
            form = (
                {"prompt": "login", "login": login, "password": "any"}
                if 'name="login"' in response.text
                else {"prompt": "consent"}
            )
            posted = browser.post(action, data=form)
            if not posted.is_redirect:
                raise AssertionError(f"the provider refused {form}: {posted.text[:500]}")
            url = urljoin(action, posted.headers["location"])
        raise AssertionError("the provider never redirected back")


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
