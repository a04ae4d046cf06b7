"""The web app: pages for people, rendered on the server from the public API.

`uvicorn services.web.main:app`. The gateway routes every path outside `/api/v1` and
`/scim/v2` here. It has no database and no event consumer: everything it shows or
changes goes through the public API, with the signed-in person's token, as any front end
would do it.
"""

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.web.api import ApiError, ApiUnavailable, Refreshes, SignInRequired
from services.web.pages import ROUTERS
from services.web.pages.base import CsrfRefused, html_response, page_of, sign_in_redirect
from services.web.rendering import load_static, make_environment
from services.web.session import SessionCookies
from shared.keyfiles import load_or_create_key
from shared.observability import configure_logging
from shared.settings import Settings, get_settings
from shared.web import RequestContextMiddleware

log = logging.getLogger(__name__)

TITLES = {
    400: "That request was not understood",
    403: "Not yours to see or do",
    404: "Nothing here",
    405: "Not allowed here",
    409: "That changed meanwhile",
    422: "That request was not understood",
    503: "Knowflow is briefly unavailable",
}


class ServerTiming:
    """`Server-Timing: page;dur=…`: how long the page took here, API calls included (what
    bench/web_bench.py reports, and what a browser's developer tools show)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = (time.perf_counter() - started) * 1000
                MutableHeaders(scope=message).append("server-timing", f"page;dur={elapsed:.1f}")
            await send(message)

        await self.app(scope, receive, send_timed)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging("web", settings.log_level, settings.log_json)
    static = load_static()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(
            base_url=settings.web_api_url.rstrip("/"),
            timeout=settings.web_api_timeout_seconds,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            trust_env=False,
        ) as client:
            app.state.api_client = client
            yield

    app = FastAPI(
        title="Knowflow web",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.static = static
    app.state.templates = make_environment(static)
    app.state.refreshes = Refreshes()
    app.state.forwarding_key = load_or_create_key(settings.forwarding_key_file).decode()

    async def error_page(request: Request, status: int, detail: str) -> Response:
        page = await page_of(request)
        response = await page.render(
            "error.html",
            status=status,
            title=TITLES.get(status, "Something went wrong"),
            detail=detail,
        )
        return response

    @app.exception_handler(SignInRequired)
    async def on_sign_in_required(request: Request, _exc: SignInRequired) -> Response:
        return sign_in_redirect(request)

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> Response:
        status = exc.status if exc.status in TITLES else 400
        return await error_page(request, status, exc.detail)

    @app.exception_handler(ApiUnavailable)
    async def on_unavailable(request: Request, exc: ApiUnavailable) -> Response:
        html = app.state.templates.get_template("unavailable.html").render(
            retry_after=exc.retry_after
        )
        response = html_response(html, status=503)
        response.headers["retry-after"] = str(exc.retry_after)
        return response

    @app.exception_handler(CsrfRefused)
    async def on_csrf(request: Request, _exc: CsrfRefused) -> Response:
        detail = (
            "This form has expired or did not come from Knowflow. Go back, reload, and try again."
        )
        return await error_page(request, 403, detail)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = "There is no such page." if exc.status_code == 404 else str(exc.detail)
        return await error_page(request, exc.status_code, detail)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        names = sorted({str(error["loc"][-1]) for error in exc.errors() if error.get("loc")})
        return await error_page(request, 400, f"Check these: {', '.join(names)}.")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        # Ready once started: it needs the gateway per request, and the gateway's own
        # readiness asks this one (checking back would be a cycle).
        return JSONResponse({"status": "ready", "checks": {}})

    @app.get("/static/{name:path}", include_in_schema=False)
    async def static_file(name: str, v: str | None = None) -> Response:
        file = static.get(name)
        if file is None:
            return Response(status_code=404)
        # A versioned URL never changes: browsers keep it a year.
        cache = "public, max-age=31536000, immutable" if v == file.version else "no-cache"
        return Response(file.body, media_type=file.media_type, headers={"cache-control": cache})

    for router in ROUTERS:
        app.include_router(router)

    app.add_middleware(ServerTiming)
    secret = load_or_create_key(settings.web_session_key_file)
    secure = settings.public_url.startswith("https://")
    app.add_middleware(SessionCookies, secret=secret, secure=secure)
    app.add_middleware(
        RequestContextMiddleware, service="web", max_body_bytes=settings.max_body_bytes
    )
    return app


app = create_app()
