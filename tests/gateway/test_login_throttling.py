"""Login and registration throttling at the gateway, in front of the real identity service."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from gateway.main import create_app
from gateway.tests.conftest import gateway_settings, serve
from gateway.tests.test_ratelimit import wait_until_shared
from shared.settings import Quota


class Verifications:
    """Counts argon2 verifications in identity (the real argon2 runs underneath)."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> Verifications:
    counter = Verifications()
    real_verify = PasswordHasher.verify

    def counted(self: PasswordHasher, hash: Any, password: Any) -> bool:
        with counter.lock:
            counter.count += 1
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    return counter


@pytest.fixture
def throttled_gateway(tmp_path: Path, nats_url: str, identity_url: str) -> Callable[..., Any]:
    """`with throttled_gateway(login_user=5) as url:` the gateway over identity, on real NATS."""

    @contextmanager
    def run(**quotas: tuple[int, float]) -> Iterator[str]:
        overrides: dict[str, Any] = {"nats_url": nats_url, "rate_limit_sync_seconds": 0.05}
        for name, (limit, window) in quotas.items():
            overrides[f"rate_limit_{name}"] = Quota(limit=limit, window=window)
        app = create_app(gateway_settings(tmp_path, {"identity": identity_url}, **overrides))
        with serve(app) as url:
            wait_until_shared(app)
            yield url

    return run


def register(url: str, handle: str, password: str = "correct horse battery") -> httpx.Response:
    return httpx.post(
        url + "/api/v1/auth/register",
        json={
            "handle": handle,
            "email": f"{handle}@example.org",
            "password": password,
            "display_name": handle.title(),
        },
    )


def login(url: str, name: str, password: str) -> httpx.Response:
    return httpx.post(url + "/api/v1/auth/login", json={"login": name, "password": password})


def test_after_five_failed_logins_the_right_password_is_refused_without_running_argon2(
    throttled_gateway: Callable[..., Any], verifications: Verifications
) -> None:
    with throttled_gateway(login_user=(5, 900)) as url:
        assert register(url, "ann").status_code == 201
        failures = [login(url, "ann", f"guess {index}").status_code for index in range(5)]
        verified_before = verifications.count
        throttled = login(url, "ANN ", "correct horse battery")  # identity's normalisation
        verified_after = verifications.count
        other_user = register(url, "bob").status_code, login(url, "bob", "correct horse battery")
    assert failures == [401] * 5
    assert throttled.status_code == 429
    assert throttled.headers["content-type"] == "application/problem+json"
    assert throttled.json()["policy"] == "login-user"
    assert int(throttled.headers["retry-after"]) > 0
    assert "login-user" in throttled.headers["ratelimit-policy"]
    assert verified_after == verified_before  # identity never saw the throttled login
    assert other_user[0] == 201 and other_user[1].status_code == 200


def test_successful_logins_do_not_spend_the_failure_budget(
    throttled_gateway: Callable[..., Any],
) -> None:
    with throttled_gateway(login_user=(2, 900)) as url:
        assert register(url, "ann").status_code == 201
        statuses = [login(url, "ann", "correct horse battery").status_code for _ in range(4)]
        failures = [login(url, "ann", "wrong").status_code for _ in range(3)]
    assert statuses == [200] * 4
    assert failures == [401, 401, 429]


def test_failed_logins_from_one_address_are_throttled_across_usernames(
    throttled_gateway: Callable[..., Any], verifications: Verifications
) -> None:
    with throttled_gateway(login_ip=(4, 3600)) as url:
        failures = [login(url, f"user{index}", "guess").status_code for index in range(4)]
        verified_before = verifications.count
        throttled = login(url, "someone-else", "guess")
    assert failures == [401] * 4
    assert throttled.status_code == 429
    assert throttled.json()["policy"] == "login-ip"
    assert verifications.count == verified_before


def test_registrations_are_throttled_per_address(throttled_gateway: Callable[..., Any]) -> None:
    with throttled_gateway(register_ip=(3, 3600)) as url:
        statuses = [register(url, f"user{index}").status_code for index in range(4)]
        refused = register(url, "late")
    assert statuses == [201, 201, 201, 429]
    assert refused.json()["policy"] == "register-ip"
    assert "retry-after" in refused.headers


def test_refresh_and_password_reset_pass_without_a_token_and_are_throttled_per_address(
    throttled_gateway: Callable[..., Any],
) -> None:
    """They carry their own credential; the auth quota (per address without a token) bounds
    guessing refresh tokens, reset links and e-mail addresses."""
    with throttled_gateway(auth=(5, 3600)) as url:
        ann = register(url, "ann")
        assert ann.status_code == 201
        refreshed = httpx.post(
            url + "/api/v1/auth/refresh", json={"refresh_token": ann.json()["refresh_token"]}
        )
        guessed = httpx.post(url + "/api/v1/auth/refresh", json={"refresh_token": "guess"})
        reset = httpx.post(url + "/api/v1/auth/password-reset", json={"email": "ann@example.org"})
        confirm = httpx.post(
            url + "/api/v1/auth/password-reset/confirm",
            json={"token": "guess", "new_password": "a brand new secret"},
        )
        throttled = httpx.post(url + "/api/v1/auth/password-reset", json={"email": "x@example.org"})
    assert (refreshed.status_code, guessed.status_code) == (200, 401)
    assert (reset.status_code, confirm.status_code) == (202, 400)
    assert throttled.status_code == 429 and throttled.json()["policy"] == "auth"
