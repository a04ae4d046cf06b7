"""Unhandled errors: a 500 problem that names the request, in the body, header and log."""

import json
import logging

from fastapi import APIRouter, FastAPI

from shared.auth import TokenVerifier
from shared.observability import JsonFormatter
from shared.settings import Settings
from shared.testing.fixtures import ServiceClientFactory
from shared.web import ServiceSpec, create_service_app

router = APIRouter()


@router.get("/boom")
def boom() -> None:
    raise RuntimeError("a bug")


SPEC = ServiceSpec(name="kit", title="kit", routers=[router], tables=[])


def kit_app(settings: Settings, verifier: TokenVerifier) -> FastAPI:
    return create_service_app(SPEC, settings=settings, verifier=verifier)


class JsonLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.formatter_json = JsonFormatter("kit")
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.formatter_json.format(record)))


def test_a_500_carries_the_request_id_in_body_header_and_log(
    service_client: ServiceClientFactory,
) -> None:
    handler = JsonLines()
    with service_client(kit_app, name="kit") as client:
        # After the app configured logging, which replaces the root's handlers.
        logging.getLogger().addHandler(handler)
        try:
            response = client.get("/boom", headers={"X-Request-ID": "req-500"})
            generated = client.get("/boom")
        finally:
            logging.getLogger().removeHandler(handler)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["request_id"] == "req-500" == response.headers["x-request-id"]
    assert generated.json()["request_id"] == generated.headers["x-request-id"] != ""
    errors = [line for line in handler.lines if line["level"] == "error"]
    assert errors and errors[0]["request_id"] == "req-500"
    assert "RuntimeError: a bug" in str(errors[0]["exception"])
