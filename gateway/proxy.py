"""The hot path: check the token, forward the request, stream the answer back.

Why naive gateways are slow (measured, see bench/README.md): a FastAPI route that calls
a shared `httpx.AsyncClient` spends most of its time in httpx/httpcore's connection pool
(its per-request bookkeeping grows with the number of pooled connections, httpx#3215) and
in anyio; on top come FastAPI's routing, dependency resolution and middleware stack, JSON
parsing and re-serialising bodies, and copying every header through several dict types.
At 64 connections that ran at a fraction of the upstream's throughput.

So this module is plain ASGI: one dict lookup or a short prefix scan picks the route, one
pass over the raw header list builds the forwarded headers (bytes stay bytes), a verified
token is a dict hit, and `gateway.upstream` (keep-alive pools, httptools) carries the
bytes. Bodies are never parsed; responses of unknown or large size are streamed.

Server-Sent Events (`text/event-stream` answers) are relayed chunk by chunk as they come,
with no read timeout but an idle one (`stream_idle_timeout`: the service sends a
heartbeat, so a stream silent that long is dead), a task that watches for the client's
disconnect and closes the upstream connection at once, and a clean end of the client's
stream when the upstream goes away (EventSource then reconnects with Last-Event-ID).
Streams on `STREAM_PATHS` are counted per user in this process (`StreamSlots`).
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote
from uuid import UUID

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import Receive, Scope, Send

from gateway.routing import (
    FORWARDED_METHODS,
    Route,
    RouteTable,
    has_dot_segment,
    needs_token_at_gateway,
)
from gateway.upstream import Connection, UpstreamPool, UpstreamUnavailable, UpstreamUnreachable
from shared.auth import Principal, TokenVerifier, bearer_token
from shared.errors import Unauthorized, Unavailable, problem_response
from shared.observability import child_traceparent, new_request_id, request_id_var

log = logging.getLogger(__name__)

GATEWAY_REQUESTS = Counter(
    "knowflow_gateway_requests_total", "Requests answered by the gateway", ["route", "status"]
)
GATEWAY_LATENCY = Histogram(
    "knowflow_gateway_request_duration_seconds",
    "Gateway latency, upstream included",
    ["route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Recomputed or replaced by the gateway rather than copied.
REQUEST_SKIP = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"x-request-id",
    b"traceparent",
    b"expect",
    b"x-forwarded-prefix",  # only the gateway says what it stripped
    b"x-forwarded-for",  # only the gateway says who the client is
    b"x-knowflow-forwarding-key",  # the web app's credential for the line above, not theirs
}
RESPONSE_SKIP = HOP_BY_HOP | {b"x-request-id", b"traceparent", b"server", b"date"}

# An upstream that cannot be reached is most often restarting: ask to come back soon.
UNREACHABLE_RETRY_AFTER = "2"

# Responses up to this size (with a Content-Length) are sent in one message; others stream.
BUFFER_LIMIT = 256 * 1024

# Long-lived event streams, bounded per user; a refused one is told to retry after this.
STREAM_PATHS = frozenset({"/api/v1/notifications/stream"})
STREAM_RETRY_AFTER = "5"
EVENT_STREAM = b"text/event-stream"
# Set in the scope while an event stream is relayed, so gateway.server can end it at shutdown.
EVENT_STREAM_SCOPE_KEY = "knowflow.event_stream"
OPEN_STREAMS = Gauge("knowflow_gateway_open_streams", "Event streams this gateway relays now")


class StreamSlots:
    """Open event streams per user in this gateway process: at most `per_user` each."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self.open: dict[UUID, int] = {}

    def take(self, user_id: UUID) -> bool:
        count = self.open.get(user_id, 0)
        if count >= self.per_user:
            return False
        self.open[user_id] = count + 1
        OPEN_STREAMS.inc()
        return True

    def give_back(self, user_id: UUID) -> None:
        count = self.open.get(user_id, 0) - 1
        if count > 0:
            self.open[user_id] = count
        else:
            self.open.pop(user_id, None)
        OPEN_STREAMS.dec()


Refuse = Callable[[int, str, dict[str, str] | None], Awaitable[None]]


class TokenCheck:
    """Verifies bearer tokens; a first-seen token may need the JWKS (sync httpx): off the loop."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    async def check(self, authorization: bytes | None) -> None:
        """Raise Unauthorized unless the header carries a valid bearer token."""
        token = bearer_token(authorization.decode("latin-1") if authorization else None)
        # The verifier remembers verified tokens until they expire: the hot path is a dict hit.
        if self.verifier.cached(token) is None:
            await asyncio.to_thread(self.verifier.verify, token)

    def principal(self, authorization: bytes | None) -> Principal | None:
        """The caller of an already checked token (a dict hit)."""
        if authorization is None:
            return None
        _scheme, _, token = authorization.decode("latin-1").partition(" ")
        return self.verifier.cached(token.strip())

    async def prefetch(self) -> None:
        """Load the JWKS early so the first request does not wait; identity may be down."""
        try:
            await asyncio.to_thread(self.verifier.refresh, force=True)
        except Exception as exc:
            log.warning("JWKS not loaded at start-up (%s); will retry on demand", exc)


class Upstreams:
    """One keep-alive pool per service, so a slow service cannot starve the others."""

    def __init__(
        self, urls: dict[str, str], *, connect_timeout: float, read_timeout: float
    ) -> None:
        self.urls = urls
        self.pools = {
            service: UpstreamPool(url, connect_timeout=connect_timeout, read_timeout=read_timeout)
            for service, url in urls.items()
        }

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()


async def send_problem(
    scope: Scope,
    send: Send,
    status: int,
    detail: str,
    *,
    request_id: str,
    traceparent: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> None:
    """Answer with RFC 9457 problem+json carrying the request id."""
    token = request_id_var.set(request_id)
    try:
        response = problem_response(status, detail, instance=scope.get("path"), **extensions)
    finally:
        request_id_var.reset(token)
    response.headers["x-request-id"] = request_id
    if traceparent:
        response.headers["traceparent"] = traceparent
    for name, value in (headers or {}).items():
        response.headers[name] = value
    await response(scope, _no_receive, send)


async def _no_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing more than `limit` bytes."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise BodyTooLarge
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class Proxy:
    """Forwards /api/v1 requests to the service the routing table names."""

    def __init__(
        self,
        *,
        table: RouteTable,
        upstreams: Upstreams,
        tokens: TokenCheck,
        max_body_bytes: int,
        max_header_bytes: int = 16_384,
        max_header_count: int = 100,
        streams_per_user: int = 5,
        stream_idle_timeout: float = 45.0,
    ) -> None:
        self.table = table
        self.streams = StreamSlots(streams_per_user)
        self.stream_idle_timeout = stream_idle_timeout
        self.upstreams = upstreams
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.max_header_count = max_header_count
        self._metrics: dict[tuple[str, int], tuple[Any, Any]] = {}

    def observe(self, route: str, status: int, started: float) -> None:
        """Count and time a request; label children are cached (their lookup takes a lock)."""
        children = self._metrics.get((route, status))
        if children is None:
            status_label = str(status)
            children = (
                GATEWAY_REQUESTS.labels(route, status_label),
                GATEWAY_LATENCY.labels(route, status_label),
            )
            self._metrics[(route, status)] = children
        children[0].inc()
        children[1].observe(time.perf_counter() - started)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status, route_label = await self.forward(scope, receive, send)
        self.observe(route_label, status, started)

    async def forward(self, scope: Scope, receive: Receive, send: Send) -> tuple[int, str]:
        """Forward one request; returns (status, route label) for metrics."""
        forwarded: list[tuple[bytes, bytes]] = []
        authorization: bytes | None = None
        incoming_id = incoming_trace = b""
        declared = 0
        # The head's size as gateway.server counts it (request line, 4 bytes per header line).
        head_bytes = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b""))
        for name, value in scope["headers"]:
            head_bytes += len(name) + len(value) + 4
            if name in REQUEST_SKIP:
                if name == b"x-request-id":
                    incoming_id = value
                elif name == b"traceparent":
                    incoming_trace = value
                elif name == b"content-length":
                    declared = int(value) if value.isdigit() else 0
                continue
            if name == b"authorization":
                authorization = value
            forwarded.append((name, value))
        request_id = incoming_id.decode("latin-1")[:128] or new_request_id()
        traceparent = child_traceparent(incoming_trace.decode("latin-1"))

        async def refuse(status: int, detail: str, headers: dict[str, str] | None = None) -> None:
            await send_problem(
                scope,
                send,
                status,
                detail,
                request_id=request_id,
                traceparent=traceparent,
                headers=headers,
            )

        path: str = scope["path"]
        method: str = scope["method"]
        if head_bytes > self.max_header_bytes or len(scope["headers"]) > self.max_header_count:
            # Under gateway.server's protocol a head this large never reaches the app.
            detail = (
                f"at most {self.max_header_count} request headers and "
                f"{self.max_header_bytes} bytes of request line and headers"
            )
            await refuse(431, detail)
            return 431, "unmatched"
        if has_dot_segment(path):
            # No normalising either: a service must never see a path outside its route
            # (`/api/v1/posts/../metrics`), whatever its router would make of it.
            await refuse(400, "the path must not contain '.' or '..' segments")
            return 400, "unmatched"
        matched = self.table.match(path)
        if matched is None:
            await refuse(404, f"no route for {path}")
            return 404, "unmatched"
        route, upstream_path = matched
        if method not in FORWARDED_METHODS:
            allow = ", ".join(sorted(FORWARDED_METHODS))
            await refuse(405, f"{method} is not allowed", {"allow": allow})
            return 405, route.public

        if needs_token_at_gateway(path):
            try:
                await self.tokens.check(authorization)
            except Unauthorized as exc:
                await refuse(401, exc.detail, {"www-authenticate": "Bearer"})
                return 401, route.public
            except Unavailable as exc:
                # Identity's keys are out of reach: the token may be fine, so not a 401.
                await refuse(503, exc.detail, {"retry-after": "5"})
                return 503, route.public

        if path not in STREAM_PATHS:
            return await self._send_upstream(
                scope,
                receive,
                send,
                route,
                upstream_path,
                forwarded,
                declared,
                refuse,
                request_id,
                traceparent,
            )
        # An event stream holds one of its user's slots for as long as it is open.
        principal = self.tokens.principal(authorization)
        if principal is None:  # checked just above: only a token expiring right now
            await refuse(401, "the token is no longer valid", {"www-authenticate": "Bearer"})
            return 401, route.public
        if not self.streams.take(principal.user_id):
            detail = (
                f"at most {self.streams.per_user} open event streams per user; "
                "close one, or retry later"
            )
            await refuse(429, detail, {"retry-after": STREAM_RETRY_AFTER})
            return 429, route.public
        try:
            return await self._send_upstream(
                scope,
                receive,
                send,
                route,
                upstream_path,
                forwarded,
                declared,
                refuse,
                request_id,
                traceparent,
            )
        finally:
            self.streams.give_back(principal.user_id)

    async def _send_upstream(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Route,
        upstream_path: str,
        forwarded: list[tuple[bytes, bytes]],
        declared: int,
        refuse: Refuse,
        request_id: str,
        traceparent: str,
    ) -> tuple[int, str]:
        """Read the body, send the request, relay the answer."""
        method: str = scope["method"]
        path: str = scope["path"]
        try:
            if declared > self.max_body_bytes:
                raise BodyTooLarge
            body = await read_body(receive, self.max_body_bytes)
        except BodyTooLarge:
            detail = f"request body exceeds {self.max_body_bytes} bytes"
            await refuse(413, detail, None)
            return 413, route.public

        forwarded.append((b"x-request-id", request_id.encode("latin-1")))
        forwarded.append((b"traceparent", traceparent.encode("latin-1")))
        if route.forwarded_prefix:
            forwarded.append((b"x-forwarded-prefix", route.forwarded_prefix))
        client = scope.get("client")
        if client:
            forwarded.append((b"x-forwarded-for", client[0].encode("latin-1")))
        pool = self.upstreams.pools[route.service]
        target = self._target(route.public, route.upstream_prefix, upstream_path, scope)
        try:
            connection = await pool.request(method.encode("ascii"), target, forwarded, body)
        except (TimeoutError, UpstreamUnavailable) as exc:
            return await self._failed(scope, refuse, route.service, route.public, exc)

        response_started = False
        try:
            headers = []
            length = -1
            event_stream = False
            for name, value in connection.headers:
                lowered = name.lower()
                if lowered in RESPONSE_SKIP:
                    continue
                if lowered == b"content-length":
                    length = int(value)
                elif lowered == b"content-type" and value.startswith(EVENT_STREAM):
                    event_stream = True
                headers.append((name, value))
            headers.append((b"x-request-id", request_id.encode("latin-1")))
            headers.append((b"traceparent", traceparent.encode("latin-1")))
            status = connection.status
            if connection.complete or 0 <= length <= BUFFER_LIMIT:
                # Read before starting the response, so a failure can still become a 502.
                content = await connection.read_all(pool.read_timeout)
                response_started = True
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": content})
                return status, route.public
            response_started = True
            await send({"type": "http.response.start", "status": status, "headers": headers})
            if event_stream:
                await self._relay_events(scope, receive, send, connection, route.service)
                return status, route.public
            while (chunk := await connection.read_chunk(pool.read_timeout)) is not None:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return status, route.public
        except (TimeoutError, UpstreamUnavailable) as exc:
            if response_started:
                # Too late for a problem response: drop the connection so the client sees it.
                log.warning("upstream %s broke off %s %s: %s", route.service, method, path, exc)
                raise
            return await self._failed(scope, refuse, route.service, route.public, exc)
        finally:
            pool.release(connection)

    async def _relay_events(
        self, scope: Scope, receive: Receive, send: Send, connection: Connection, service: str
    ) -> None:
        """Relay an event stream until either side ends it; each chunk is sent as it comes."""

        async def watch_client() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            connection.abort("the client went away")

        watcher = asyncio.create_task(watch_client())
        scope[EVENT_STREAM_SCOPE_KEY] = True
        try:
            while (chunk := await connection.read_chunk(self.stream_idle_timeout)) is not None:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (TimeoutError, UpstreamUnavailable) as exc:
            # Ended here rather than broken off: the client's EventSource reconnects.
            log.info("event stream from %s ended: %s", service, exc)
            connection.close()
        finally:
            watcher.cancel()
            scope[EVENT_STREAM_SCOPE_KEY] = False
        await send({"type": "http.response.body", "body": b""})

    async def _failed(
        self,
        scope: Scope,
        refuse: Refuse,
        service: str,
        route: str,
        exc: Exception,
    ) -> tuple[int, str]:
        """504 when the answer did not come in time; 503 + Retry-After when the request
        never reached the service (refused: down or restarting); 502 when it broke off."""
        headers = None
        if isinstance(exc, TimeoutError):
            status, detail = 504, f"the {service} service did not answer in time"
        elif isinstance(exc, UpstreamUnreachable):
            status, detail = 503, f"the {service} service cannot be reached; retry shortly"
            headers = {"retry-after": UNREACHABLE_RETRY_AFTER}
        else:
            status, detail = 502, f"the {service} service broke off its answer"
        log.warning("%s %s: %s (%s)", scope["method"], scope["path"], detail, exc)
        await refuse(status, detail, headers)
        return status, route

    def _target(self, public: str, upstream_prefix: str, upstream_path: str, scope: Scope) -> bytes:
        """The upstream request target, keeping the client's percent-encoding and query."""
        raw_path: bytes | None = scope.get("raw_path")
        prefix = public.encode()
        if raw_path is not None and raw_path.startswith(prefix):
            path = upstream_prefix.encode() + raw_path[len(prefix) :]
        else:
            path = quote(upstream_path).encode("ascii")
        query: bytes = scope.get("query_string", b"")
        return path + b"?" + query if query else path
