"""How the gateway is served: uvicorn's httptools protocol with a cap on request heads.

    uvicorn gateway.main:app --http gateway.server:CappedHttpToolsProtocol --no-server-header

Neither uvicorn nor httptools bounds a request head (an 8 MB header was read to the end
and forwarded), so the cap has to sit in the protocol, where the bytes arrive: a head
longer than `max_header_bytes` (request line and header lines) or with more than
`max_header_count` headers is answered 431 problem+json and the connection closed, also
while it is still arriving. The app checks the same caps on what it is handed, so they
hold under any server; only here do they bound what is buffered.

At shutdown the connections relaying an event stream are closed at once (see `shutdown`).
"""

import asyncio
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.proxy import EVENT_STREAM_SCOPE_KEY as EVENT_STREAM_KEY
from gateway.security import edge_headers
from shared.errors import problem_response
from shared.observability import new_request_id, request_id_var
from shared.settings import get_settings

# `uvicorn.Config` options the gateway is served with (deploy/ passes the same flags).
GATEWAY_UVICORN_OPTIONS: dict[str, Any] = {
    "http": "gateway.server:CappedHttpToolsProtocol",
    "server_header": False,
}


class HeadTooLarge(Exception):
    """The request head passed a cap."""


class CappedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing request heads over the caps with 431."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self.max_header_bytes = settings.max_header_bytes
        self.max_header_count = settings.max_header_count
        self.edge_headers = edge_headers(settings)
        self.in_head = False
        self.head_bytes = 0
        self.refusal: str | None = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head = True
        self.head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.head_bytes += len(url)
        self._check()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if len(self.headers) >= self.max_header_count:
            self.refusal = f"more than {self.max_header_count} request headers"
            raise HeadTooLarge
        self._check()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        super().on_headers_complete()

    def _check(self) -> None:
        if self.head_bytes > self.max_header_bytes:
            self.refusal = f"request line and headers exceed {self.max_header_bytes} bytes"
            raise HeadTooLarge

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # a HeadTooLarge in a callback ends in send_400_response
        if self.in_head and self.refusal is None and not self.transport.is_closing():
            # The head is still arriving: httptools buffers the header being read, so
            # count what came in (a chunk that leaves the head unfinished is all head).
            self.head_bytes += len(data)
            if self.head_bytes > self.max_header_bytes:
                self.refusal = f"request line and headers exceed {self.max_header_bytes} bytes"
                self.send_431_response()

    def shutdown(self) -> None:
        """At shutdown uvicorn waits for open responses; an event stream never ends by
        itself, so close its connection now (the client reconnects, to another replica)."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and self.scope.get(EVENT_STREAM_KEY):
            self.transport.close()
            return
        super().shutdown()

    def send_400_response(self, msg: str) -> None:
        if self.refusal is None:
            super().send_400_response(msg)
        else:
            self.send_431_response()

    def send_431_response(self) -> None:
        """Answer 431 problem+json and close; the request never reaches the app."""
        request_id = new_request_id()
        token = request_id_var.set(request_id)
        try:
            problem = problem_response(431, self.refusal, instance=self._path())
        finally:
            request_id_var.reset(token)
        content = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        headers = [
            *self.server_state.default_headers,
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(problem.body)).encode("ascii")),
            (b"x-request-id", request_id.encode("ascii")),
            (b"connection", b"close"),
            *self.edge_headers,
        ]
        for name, value in headers:
            content += (name, b": ", value, b"\r\n")
        content += (b"\r\n", bytes(problem.body))
        self.transport.write(b"".join(content))
        self.transport.close()
        self.in_head = False

    def _path(self) -> str | None:
        try:
            path = httptools.parse_url(self.url).path
        except (httptools.HttpParserInvalidURLError, AttributeError):
            return None
        return path.decode("latin-1") if path else None
