"""The gateway itself refuses revoked tokens: over echo upstreams that accept anything."""

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from gateway.main import Gateway, create_app
from gateway.tests.conftest import EchoUpstream, gateway_settings, serve_gateway
from shared.auth import TokenIssuer
from shared.events.contracts import AccessRevoked
from shared.ids import new_id, utcnow

Upstreams = dict[str, tuple[EchoUpstream, str]]


def wait_until_following(app: Gateway, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while app.revocation_feed is None or not app.revocation_feed.caught_up.is_set():
        assert time.monotonic() < deadline, "the gateway never followed the revocations"
        time.sleep(0.02)


def test_the_gateway_refuses_a_revoked_token_within_5_seconds_without_forwarding_it(
    tmp_path: Path,
    nats_url: str,
    echo_upstreams: Upstreams,
    token_issuer: TokenIssuer,
    publish_events: Callable[..., None],
) -> None:
    urls = {name: url for name, (_, url) in echo_upstreams.items()}
    app = create_app(gateway_settings(tmp_path, urls, nats_url=nats_url))
    user, session = new_id(), new_id()
    token = token_issuer.issue(user_id=user, handle="ada")
    in_session = token_issuer.issue(user_id=new_id(), handle="bob", session_id=session)
    other = token_issuer.issue(user_id=new_id(), handle="cy")
    posts = echo_upstreams["posts"][0]

    def get(url: str, bearer: str) -> int:
        headers = {"Authorization": f"Bearer {bearer}"}
        return httpx.get(url + "/api/v1/posts", headers=headers).status_code

    with serve_gateway(app) as url:
        wait_until_following(app)
        assert [get(url, bearer) for bearer in (token, in_session, other)] == [200, 200, 200]
        time.sleep(0.005)
        publish_events(
            AccessRevoked(user_id=user, not_before=utcnow(), reason="deactivated"),
            AccessRevoked(
                user_id=new_id(), session_id=session, not_before=utcnow(), reason="logout"
            ),
        )
        started = time.perf_counter()
        while get(url, token) != 401 or get(url, in_session) != 401:
            assert time.perf_counter() - started < 5, "the gateway still accepts the token"
            time.sleep(0.01)
        print(
            f"gateway refused the revoked tokens {1000 * (time.perf_counter() - started):.0f} ms after publishing"
        )
        forwarded = len(posts.calls)
        assert get(url, token) == 401
        assert len(posts.calls) == forwarded  # refused at the edge, not by the upstream
        assert get(url, other) == 200
        # A new sign-in after the revocation passes.
        assert get(url, token_issuer.issue(user_id=user, handle="ada")) == 200
