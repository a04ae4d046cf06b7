"""No log line ever holds a password, a password hash or a token."""

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from services.identity.models import User
from services.identity.tests.test_routes import identity_app
from shared.observability import JsonFormatter
from shared.testing.fixtures import ServiceClientFactory

PASSWORD = "Tr0ub4dor&3-secret-passphrase"


class Lines(logging.Handler):
    """Every record, formatted at once as the service's JSON log would print it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.formatter_json = JsonFormatter("identity")
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.formatter_json.format(record))
        self.lines.append(logging.Formatter("%(message)s").format(record))


@pytest.fixture
def logged(service_client: ServiceClientFactory) -> Iterator[tuple[TestClient, Lines]]:
    with service_client(identity_app, name="identity") as client:
        root = logging.getLogger()
        lines, level = Lines(), root.level
        root.addHandler(lines)
        root.setLevel(logging.DEBUG)
        try:
            yield client, lines
        finally:
            root.removeHandler(lines)
            root.setLevel(level)


def test_logs_hold_no_password_hash_or_token_across_failures_logins_and_requests(
    logged: tuple[TestClient, Lines], caplog: pytest.LogCaptureFixture
) -> None:
    client, lines = logged
    caplog.set_level(logging.DEBUG)
    body = {
        "handle": "ada",
        "email": "ada@example.org",
        "password": PASSWORD,
        "display_name": "Ada",
    }
    registered = client.post("/auth/register", json=body)
    assert registered.status_code == 201
    token = registered.json()["access_token"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        racers = list(pool.map(lambda _i: client.post("/auth/register", json=body), range(4)))
    assert {response.status_code for response in racers} == {409}
    assert client.post("/auth/login", json={"login": "ada", "password": PASSWORD}).is_success
    assert (
        client.post("/auth/login", json={"login": "ada", "password": "wrong!"}).status_code == 401
    )
    assert client.get("/users/me", headers={"Authorization": f"Bearer {token}"}).is_success
    assert client.get(f"/users/me?access_token={token}").status_code == 401
    assert client.get("/users/me", headers={"Authorization": f"Bearer {token}x"}).status_code == 401

    # A failing INSERT logged with its traceback, as the 500 handler would log it.
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        stored = session.exec(select(User)).one()
        password_hash = stored.password_hash
        clash = User(
            handle="ada", email="ada@example.org", password_hash=password_hash, display_name="A"
        )
        session.add(clash)
        with pytest.raises(IntegrityError) as failure:
            session.flush()
    logging.getLogger("test").error("insert failed", exc_info=failure.value)

    output = "\n".join([*lines.lines, caplog.text])
    assert "insert failed" in output and "UNIQUE" in output.upper()
    for secret in (PASSWORD, password_hash, password_hash.split("$")[-1], token):
        assert secret not in output
    assert token.split(".")[1] not in output  # not even the claims part
