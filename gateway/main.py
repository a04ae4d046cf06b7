"""The gateway process: `uvicorn gateway.main:app` (uvicorn[standard]: uvloop + httptools).

A plain ASGI app rather than FastAPI: the gateway's own endpoints are a dict lookup and
everything else goes straight to `gateway.proxy.Proxy`, so no router, dependency
resolution or middleware stack runs per forwarded request (see bench/README.md).
"""

import asyncio
import logging
import mimetypes
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi.openapi.docs import get_swagger_ui_html
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

from gateway.openapi import OpenAPICache
from gateway.proxy import Proxy, TokenCheck, Upstreams, send_problem
from gateway.ratelimit import RateLimiter
from gateway.routing import RouteTable, upstream_urls
from gateway.security import (
    EdgeHeaders,
    TrustedForwarder,
    cors,
    docs_csp,
    metrics_authorized,
)
from gateway.upstream import UpstreamUnavailable
from shared.auth import TokenVerifier
from shared.errors import problem_response
from shared.events.asyncapi import PAGE_CSP, cached_document, render_page
from shared.events.bus import Bus
from shared.keyfiles import load_or_create_key
from shared.observability import configure_logging, new_request_id, request_id_var
from shared.revocation import RevocationFeed
from shared.settings import Settings, get_settings
from shared.tasks import stop_tasks

log = logging.getLogger(__name__)

Handler = Callable[[], Awaitable[Response]]

# Swagger UI's script, styles and icon, as the fastapi-offline package ships them: /docs
# needs nothing from another site.
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_ASSET_NAMES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")


def docs_asset_handler(name: str) -> Handler:
    """One of Swagger UI's files, read once, cached by browsers for a day."""
    body = (DOCS_ASSETS / name).read_bytes()
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    headers = {"cache-control": "public, max-age=86400"}

    async def serve() -> Response:
        return Response(body, media_type=media_type, headers=headers)

    return serve


class Gateway:
    """The ASGI app: own endpoints by exact path, every other request to the proxy."""

    def __init__(
        self,
        settings: Settings,
        *,
        verifier: TokenVerifier | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 30.0,
        readiness_timeout: float = 2.0,
    ) -> None:
        self.settings = settings
        self.table = RouteTable()
        self.urls = upstream_urls(settings)
        self.upstreams = Upstreams(
            self.urls, connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        self.tokens = TokenCheck(verifier or TokenVerifier.for_settings(settings))
        self.proxy = Proxy(
            table=self.table,
            upstreams=self.upstreams,
            tokens=self.tokens,
            max_body_bytes=settings.max_body_bytes,
            max_header_bytes=settings.max_header_bytes,
            max_header_count=settings.max_header_count,
            # Event streams: per-user bound, and closed after three silent heartbeats.
            streams_per_user=settings.sse_streams_per_user,
            stream_idle_timeout=3 * settings.sse_heartbeat_seconds,
        )
        self.limiter = RateLimiter.from_settings(
            settings,
            self.proxy,
            verifier=self.tokens.verifier,
            table=self.table,
            observe=self.proxy.observe,
        )
        self.forward = self.limiter if settings.rate_limit_enabled else self.proxy
        # The web app serves pages, not API: it has no part in the merged document.
        api_urls = {name: url for name, url in self.urls.items() if name != "web"}
        self.openapi = OpenAPICache(api_urls, self.table)
        self.readiness_timeout = readiness_timeout
        self.own: dict[str, Handler] = {
            "/healthz": self.healthz,
            "/readyz": self.readyz,
            "/openapi.json": self.openapi_json,
            "/docs": self.docs,
            "/asyncapi.json": self.asyncapi_json,
            "/asyncapi": self.asyncapi_page,
        }
        for name in DOCS_ASSET_NAMES:
            self.own[f"/docs/assets/{name}"] = docs_asset_handler(name)
        if settings.metrics_token:  # otherwise /metrics is not served here at all
            self.own["/metrics"] = self.metrics
        self.edge = EdgeHeaders(settings)
        self.forwarder = TrustedForwarder(load_or_create_key(settings.forwarding_key_file))
        self.http = cors(settings, self.route)
        docs = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Knowflow API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png",
        )
        self.docs_page = bytes(docs.body), docs_csp(bytes(docs.body))
        # The event contract is a function of the code: built on first request, then kept.
        self.asyncapi: tuple[bytes, bytes] | None = None
        self.bus: Bus | None = None
        self.revocation_feed: RevocationFeed | None = None
        self._revocations_task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.forwarder.resolve(scope)
            await self.http(scope, receive, self.edge.wrap(scope, send))
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def route(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.own.get(scope["path"])
        if handler is None:
            await self.forward(scope, receive, send)
        else:
            await self.serve_own(handler, scope, send)

    async def serve_own(self, handler: Handler, scope: Scope, send: Send) -> None:
        started = time.perf_counter()
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")[:128]
        request_id = incoming or new_request_id()
        if scope["method"] not in ("GET", "HEAD"):
            await send_problem(scope, send, 405, "only GET is allowed", request_id=request_id)
            self.proxy.observe(scope["path"], 405, started)
            return
        if handler == self.metrics and not metrics_authorized(scope, self.settings.metrics_token):
            headers = {"www-authenticate": "Bearer"}
            detail = "a bearer token (KNOWFLOW_METRICS_TOKEN) is required"
            await send_problem(scope, send, 401, detail, request_id=request_id, headers=headers)
            self.proxy.observe(scope["path"], 401, started)
            return
        token = request_id_var.set(request_id)
        try:
            response = await handler()
        finally:
            request_id_var.reset(token)
        response.headers["x-request-id"] = request_id
        await response(scope, _no_receive, send)
        self.proxy.observe(scope["path"], response.status_code, started)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.tokens.prefetch()
                self._revocations_task = asyncio.create_task(
                    self.follow_revocations(), name="gateway-revocations"
                )
                if self.forward is self.limiter:
                    await self.limiter.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.upstreams.close()
                if self.forward is self.limiter:
                    await self.limiter.stop()
                await self.stop_following_revocations()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def follow_revocations(self) -> None:
        """Refuse revoked tokens: connect to NATS (retrying while it is away) and follow.

        In the background, so the gateway starts without NATS: until the feed has caught up
        a revoked token is forwarded, and the service refuses it (every service reads the
        revocations in force before it serves a request).
        """
        self.bus = await Bus.connect(
            self.settings.nats_url, stream=self.settings.stream_name, name="gateway"
        )
        feed = RevocationFeed(self.bus, self.tokens.verifier.revocations, name="gateway")
        self.revocation_feed = feed
        await feed.run()

    async def stop_following_revocations(self) -> None:
        await stop_tasks([self._revocations_task])
        if self.revocation_feed is not None:
            await self.revocation_feed.stop()
        if self.bus is not None:
            await self.bus.close()

    async def healthz(self) -> Response:
        """Liveness: the process answers."""
        return JSONResponse({"status": "ok"})

    async def readyz(self) -> Response:
        """Readiness: every upstream answers its own /readyz with 200."""
        names = list(self.urls)
        results = await asyncio.gather(*(self._check_ready(name) for name in names))
        checks = dict(zip(names, results, strict=True))
        if all(result == "ok" for result in checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        unready = [name for name, result in checks.items() if result != "ok"]
        return problem_response(503, f"not ready: {', '.join(unready)}", checks=checks)

    async def _check_ready(self, service: str) -> str:
        pool = self.upstreams.pools[service]
        try:
            async with asyncio.timeout(self.readiness_timeout):
                connection = await pool.request(b"GET", b"/readyz", [])
                try:
                    await connection.read_all(self.readiness_timeout)
                finally:
                    pool.release(connection)
        except (TimeoutError, UpstreamUnavailable) as exc:
            return f"unavailable: {type(exc).__name__}"
        return "ok" if connection.status == 200 else f"status {connection.status}"

    async def metrics(self) -> Response:
        """Prometheus metrics of this process."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def openapi_json(self) -> Response:
        """The merged OpenAPI document of all services."""
        document, missing = await self.openapi.document()
        headers = {"x-openapi-missing": ",".join(missing)} if missing else None
        return JSONResponse(document, headers=headers)

    async def docs(self) -> Response:
        """Swagger UI over the merged document (built once: its CSP names its script's hash)."""
        body, csp = self.docs_page
        return HTMLResponse(body, headers={"content-security-policy": csp})

    def _asyncapi(self) -> tuple[bytes, bytes]:
        if self.asyncapi is None:
            document = cached_document(self.settings.nats_url)
            page = render_page(document).encode("utf-8")
            self.asyncapi = (JSONResponse(document).body, page)
        return self.asyncapi

    async def asyncapi_json(self) -> Response:
        """The AsyncAPI 3.0 document of every event Knowflow publishes (no token needed)."""
        body, _ = self._asyncapi()
        return Response(body, media_type="application/json")

    async def asyncapi_page(self) -> Response:
        """The same contract as a readable page: no script, nothing from elsewhere."""
        _, page = self._asyncapi()
        return HTMLResponse(page, headers={"content-security-policy": PAGE_CSP})


async def _no_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


def create_app(
    settings: Settings | None = None,
    *,
    verifier: TokenVerifier | None = None,
    connect_timeout: float = 2.0,
    read_timeout: float = 30.0,
) -> Gateway:
    """The gateway ASGI app for these settings (environment `KNOWFLOW_*` by default)."""
    settings = settings or get_settings()
    configure_logging("gateway", settings.log_level, settings.log_json)
    return Gateway(
        settings, verifier=verifier, connect_timeout=connect_timeout, read_timeout=read_timeout
    )


app = create_app()
