"""Request ids, W3C trace context and JSON logs: one request can be followed end to end."""

import json
import logging
import re
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from starlette.requests import HTTPConnection

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
traceparent_var: ContextVar[str | None] = ContextVar("traceparent", default=None)
# The path prefix a proxy stripped (X-Forwarded-Prefix), so errors name the public URL.
forwarded_prefix_var: ContextVar[str] = ContextVar("forwarded_prefix", default="")

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def new_request_id() -> str:
    return secrets.token_hex(16)


def current_traceparent() -> str | None:
    return traceparent_var.get()


def child_traceparent(incoming: str | None) -> str:
    """Continue the caller's trace with a new span id, or start a new trace."""
    match = _TRACEPARENT.match(incoming or "")
    trace_id = match.group(1) if match else secrets.token_hex(16)
    flags = match.group(3) if match else "01"
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


def outgoing_headers() -> dict[str, str]:
    """Headers that carry this request's id and trace to a downstream HTTP call."""
    headers = {"traceparent": child_traceparent(traceparent_var.get())}
    if request_id := request_id_var.get():
        headers["X-Request-ID"] = request_id
    return headers


def trace_id_of(traceparent: str | None) -> str | None:
    match = _TRACEPARENT.match(traceparent or "")
    return match.group(1) if match else None


@contextmanager
def bind_traceparent(incoming: str | None) -> Iterator[str]:
    """Run a block (an event handler) as a child span of the event's trace."""
    token = traceparent_var.set(child_traceparent(incoming))
    try:
        yield traceparent_var.get() or ""
    finally:
        traceparent_var.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if request_id := request_id_var.get():
            entry["request_id"] = request_id
        if trace_id := trace_id_of(traceparent_var.get()):
            entry["trace_id"] = trace_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(service: str, level: str = "INFO", as_json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access logs come from our own middleware, with request ids.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every URL it calls, query string included; our calls are in the
    # callee's access log, and a URL may carry what no log should.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def client_address(connection: HTTPConnection) -> str | None:
    """The caller's address: behind the gateway, X-Forwarded-For as the gateway set it."""
    forwarded = connection.headers.get("x-forwarded-for", "").split(",")[0].strip()
    address = forwarded or (connection.client.host if connection.client else None)
    return address[:64] if address else None
