"""Rate limits at the gateway: real gateways on real NATS, over real HTTP to echo upstreams."""

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import http_sf
import httpx
import pytest

from gateway.main import Gateway, create_app
from gateway.tests.conftest import EchoUpstream, gateway_settings, serve
from shared.ids import new_id
from shared.natsserver import free_port
from shared.settings import Quota

Upstreams = dict[str, tuple[EchoUpstream, str]]
AuthHeader = Callable[..., dict[str, str]]


def wait_until_shared(app: Gateway, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not app.limiter.buckets.shared:
        assert time.monotonic() < deadline, "the limiter never reached NATS"
        time.sleep(0.02)


@pytest.fixture
def limited_gateway(tmp_path: Path, nats_url: str, echo_upstreams: Upstreams) -> Callable[..., Any]:
    """`with limited_gateway(reads=3) as (app, url):` a gateway with small quotas on real NATS."""

    @contextmanager
    def run(**quotas: Any) -> Iterator[tuple[Gateway, str]]:
        urls = {name: url for name, (_, url) in echo_upstreams.items()}
        overrides: dict[str, Any] = {"nats_url": nats_url, "rate_limit_sync_seconds": 0.05}
        for name, value in quotas.items():
            if name.startswith("rate_limit_") or name == "nats_url":
                overrides[name] = value
            else:
                overrides[f"rate_limit_{name}"] = Quota(limit=value, window=60)
        app = create_app(gateway_settings(tmp_path, urls, **overrides))
        with serve(app) as url:
            if overrides["nats_url"] == nats_url:
                wait_until_shared(app)
            yield app, url

    return run


def ratelimit_fields(response: httpx.Response) -> tuple[dict[str, Any], dict[str, Any]]:
    """RateLimit and RateLimit-Policy parsed as structured-field lists, keyed by policy."""
    fields: list[dict[str, Any]] = []
    for name in ("ratelimit", "ratelimit-policy"):
        members: Any = http_sf.parse(response.headers[name].encode(), tltype="list")
        fields.append({policy: params for policy, params in members})
    return fields[0], fields[1]


def test_normal_responses_carry_ratelimit_and_ratelimit_policy_fields(
    limited_gateway: Callable[..., Any], auth_header: AuthHeader
) -> None:
    with limited_gateway(reads=10, writes=5) as (_, url):
        headers = auth_header()
        read = httpx.get(url + "/api/v1/posts", headers=headers)
        write = httpx.post(url + "/api/v1/posts", headers=headers, json={})
    assert read.status_code == 200
    limits, policies = ratelimit_fields(read)
    assert policies == {"reads": {"q": 10, "w": 60}}
    assert limits["reads"]["r"] == 9
    assert limits["reads"]["t"] >= 1
    assert write.status_code == 201
    assert ratelimit_fields(write)[1] == {"writes": {"q": 5, "w": 60}}


def test_over_the_limit_is_429_problem_with_retry_after_and_ratelimit_fields(
    limited_gateway: Callable[..., Any], auth_header: AuthHeader, echo_upstreams: Upstreams
) -> None:
    with limited_gateway(reads=3) as (_, url):
        headers = auth_header()
        httpx.get(url + "/api/v1/posts", headers=headers)  # verifies (and caches) the token
        statuses = [httpx.get(url + "/api/v1/posts", headers=headers) for _ in range(4)]
    assert [response.status_code for response in statuses] == [200, 200, 200, 429]
    refused = statuses[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["status"] == 429
    assert problem["policy"] == "reads"
    assert problem["request_id"] == refused.headers["x-request-id"]
    # 3 tokens per 60 s: one comes back in 20 s.
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    limits, policies = ratelimit_fields(refused)
    assert limits["reads"]["r"] == 0
    assert policies["reads"] == {"q": 3, "w": 60}
    calls = [call for call in echo_upstreams["posts"][0].calls if call["path"] == "/posts"]
    assert len(calls) == 4  # the refused request never reached the upstream


def test_each_user_has_a_budget_of_its_own(
    limited_gateway: Callable[..., Any], auth_header: AuthHeader
) -> None:
    with limited_gateway(reads=2) as (_, url):
        ann, bob = auth_header(handle="ann"), auth_header(handle="bob")
        for headers in (ann, bob):
            httpx.get(url + "/api/v1/users/me", headers=headers)  # first sight: counted per IP
        ann_statuses = [httpx.get(url + "/api/v1/posts", headers=ann).status_code for _ in range(3)]
        bob_status = httpx.get(url + "/api/v1/posts", headers=bob).status_code
    assert ann_statuses == [200, 200, 429]
    assert bob_status == 200


def test_anonymous_requests_are_limited_per_ip_in_their_route_class(
    limited_gateway: Callable[..., Any], auth_header: AuthHeader
) -> None:
    with limited_gateway(auth=2, reads=50) as (_, url):
        statuses = [
            httpx.post(url + "/api/v1/auth/register", json={"handle": "x"}).status_code
            for _ in range(3)
        ]
        # Another class (and a signed-in user) is not affected.
        headers = auth_header()
        read = httpx.get(url + "/api/v1/posts", headers=headers)
    assert statuses == [201, 201, 429]
    assert read.status_code == 200


def test_two_gateways_on_the_same_nats_share_one_budget(
    limited_gateway: Callable[..., Any], auth_header: AuthHeader
) -> None:
    with limited_gateway(reads=6) as (_, first), limited_gateway(reads=6) as (_, second):
        headers = auth_header()
        for url in (first, second):
            httpx.get(url + "/api/v1/users/me", headers=headers)  # each verifies the token once
        allowed = 0
        for index in range(10):
            url = first if index % 2 == 0 else second
            response = httpx.get(url + "/api/v1/posts", headers=headers)
            if response.status_code == 200:
                allowed += 1
            time.sleep(0.3)  # several sync rounds, so each sees the other's spending
        last = httpx.get(second + "/api/v1/posts", headers=headers)
    # Counting alone, each would allow 5 of its 5 (10); shared, 6, or 7 if a push was late
    # on a busy machine (the bound the module docstring states).
    assert 6 <= allowed <= 7
    assert last.status_code == 429


def test_a_bucket_spent_on_one_gateway_is_empty_on_a_gateway_that_never_saw_the_client(
    limited_gateway: Callable[..., Any], auth_header: AuthHeader
) -> None:
    with limited_gateway(reads=3) as (_, first), limited_gateway(reads=3) as (_, second):
        headers = auth_header()
        for url in (first, second):
            httpx.get(url + "/api/v1/users/me", headers=headers)
        spent = [httpx.get(first + "/api/v1/posts", headers=headers).status_code for _ in range(4)]
        time.sleep(0.3)
        elsewhere = httpx.get(second + "/api/v1/articles", headers=headers)
    assert spent == [200, 200, 200, 429]
    assert elsewhere.status_code == 429


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_without_nats_each_gateway_still_limits_with_local_buckets_and_logs_it_once(
    limited_gateway: Callable[..., Any], auth_header: AuthHeader
) -> None:
    nowhere = f"nats://127.0.0.1:{free_port()}"
    lines = Lines()
    logger = logging.getLogger("gateway.ratelimit")
    logger.addHandler(lines)
    try:
        with limited_gateway(reads=2, nats_url=nowhere) as (app, url):
            headers = auth_header()
            httpx.get(url + "/api/v1/users/me", headers=headers)
            statuses = [
                httpx.get(url + "/api/v1/posts", headers=headers).status_code for _ in range(3)
            ]
            time.sleep(2.5)  # several failed reconnects
            assert not app.limiter.buckets.shared
    finally:
        logger.removeHandler(lines)
    assert statuses == [200, 200, 429]
    assert len([line for line in lines.lines if "counted per gateway replica" in line]) == 1


def test_limits_can_be_switched_off(
    tmp_path: Path, echo_upstreams: Upstreams, auth_header: AuthHeader
) -> None:
    urls = {name: url for name, (_, url) in echo_upstreams.items()}
    settings = gateway_settings(
        tmp_path, urls, rate_limit_enabled=False, rate_limit_reads=Quota(limit=1, window=60)
    )
    with serve(create_app(settings)) as url:
        headers = auth_header()
        responses = [httpx.get(url + "/api/v1/posts", headers=headers) for _ in range(3)]
    assert [response.status_code for response in responses] == [200, 200, 200]
    assert "ratelimit" not in responses[0].headers


def test_admin_tokens_are_not_throttled_so_ops_imports_run_at_full_speed(
    limited_gateway: Callable[..., Any], token_issuer: Any, auth_header: AuthHeader
) -> None:
    with limited_gateway(writes=2) as (_, url):
        admin = {
            "Authorization": f"Bearer {token_issuer.issue(user_id=new_id(), handle='ops', is_admin=True)}"
        }
        httpx.get(url + "/api/v1/users/me", headers=admin)  # first sight: counted per IP
        admin_statuses = {
            httpx.post(url + "/api/v1/posts", headers=admin, json={}).status_code for _ in range(5)
        }
        member = auth_header(handle="member")
        httpx.get(url + "/api/v1/users/me", headers=member)
        member_statuses = [
            httpx.post(url + "/api/v1/posts", headers=member, json={}).status_code for _ in range(3)
        ]
    assert admin_statuses == {201}
    assert member_statuses == [201, 201, 429]


def test_admins_can_be_throttled_like_everyone_when_ops_say_so(
    limited_gateway: Callable[..., Any], token_issuer: Any
) -> None:
    with limited_gateway(writes=2, rate_limit_exempt_admins=False) as (_, url):
        admin = {
            "Authorization": f"Bearer {token_issuer.issue(user_id=new_id(), handle='ops', is_admin=True)}"
        }
        httpx.get(url + "/api/v1/users/me", headers=admin)
        statuses = [
            httpx.post(url + "/api/v1/posts", headers=admin, json={}).status_code for _ in range(3)
        ]
    assert statuses == [201, 201, 429]
