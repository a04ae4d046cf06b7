"""The app factory every service uses: lifespan, problem+json errors, request context, health."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from sqlmodel import SQLModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import TokenVerifier
from shared.db import check_database, create_tables, is_database_unavailable, make_engine
from shared.errors import KnowflowError, problem_response
from shared.events.bus import Bus
from shared.events.consumer import Consumer, ConsumerRunner, ProcessedEvent
from shared.events.outbox import OutboxMessage, OutboxRelay, outbox_backlog
from shared.idempotency import IdempotencyRecord, IdempotentRoute, prune_forever
from shared.metrics import (
    CONSUMER_LAG,
    EVENTS_CONSUMED,
    EVENTS_PUBLISHED,
    HTTP_LATENCY,
    HTTP_REQUESTS,
    OUTBOX_BACKLOG,
)
from shared.migrations import upgrade
from shared.observability import (
    child_traceparent,
    configure_logging,
    forwarded_prefix_var,
    new_request_id,
    request_id_var,
    traceparent_var,
)
from shared.openapi import install_contract_openapi
from shared.query import declared_query_names
from shared.revocation import RevocationFeed
from shared.settings import Settings, get_settings
from shared.tasks import stop_tasks

log = logging.getLogger(__name__)

# What a client is told to wait when the database is unreachable or stalled.
DATABASE_RETRY_AFTER_SECONDS = 5


JSON_NUL_ESCAPE = b"\\u0000"


def holds_json_nul(body: bytes) -> bool:
    """Whether a JSON text holds a NUL character: a `\\u0000` escape whose backslash is not
    itself escaped (`\\\\u0000` is the six characters `\\u0000`, which is fine)."""
    start = body.find(JSON_NUL_ESCAPE)
    while start != -1:
        backslashes = 0
        while start - backslashes > 0 and body[start - backslashes - 1] == ord("\\"):
            backslashes += 1
        if backslashes % 2 == 0:
            return True
        start = body.find(JSON_NUL_ESCAPE, start + 1)
    return False


def nul_refused(where: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "string_nul", "loc": (where,), "msg": "text may not contain NUL characters"}]
    )


async def refuse_nul_characters(request: Request) -> None:
    """PostgreSQL text cannot hold NUL and no Knowflow text needs one: every service refuses it
    in a path parameter, a declared query parameter and a JSON body alike, so both stores
    answer the same 422 (an unknown query parameter is ignored, NUL or not)."""
    if "\x00" in request.scope["path"]:  # not request.url: building it costs a URL parse
        raise nul_refused("path")
    if b"%00" in request.scope.get("query_string", b""):
        route = request.scope.get("route")
        declared = declared_query_names(route) if isinstance(route, APIRoute) else frozenset()
        for name, value in request.query_params.multi_items():
            if name in declared and "\x00" in value:
                raise nul_refused("query")
    if "json" in request.headers.get("content-type", "") and holds_json_nul(await request.body()):
        raise nul_refused("body")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None


def allowed_methods(request: Request) -> str:
    """Every method some route of the service answers at this path (Starlette names one route's)."""
    path = request.url.path
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, APIRoute) and route.path_regex.match(path):
            methods |= route.methods or set()
    spec: ServiceSpec | None = getattr(request.app.state, "spec", None)
    for router in spec.routers if spec else ():
        for route in router.routes:
            if isinstance(route, APIRoute) and route.path_regex.match(path):
                methods |= route.methods or set()
    return ", ".join(sorted(methods))


def unexpected_error_response(path: str | None, exc: BaseException) -> JSONResponse:
    """Log an unhandled error with its traceback and answer a bare 500."""
    log.error("unhandled error on %s", path, exc_info=exc)
    return problem_response(500, "internal error", instance=path)


def database_unavailable_response(path: str | None, exc: BaseException) -> JSONResponse:
    """A database that cannot be reached or answer in time: 503, retry later."""
    cause = getattr(exc, "orig", None) or exc
    log.warning("database unavailable on %s: %s: %s", path, type(cause).__name__, cause)
    response = problem_response(
        503, "the database is unavailable; try again shortly", instance=path
    )
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


def install_problem_handlers(app: FastAPI) -> None:
    async def on_domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, KnowflowError)
        return problem_response(
            exc.status,
            exc.detail,
            instance=request.url.path,
            headers=exc.headers or None,
            **exc.extensions,
        )

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(error.get("loc", ())), "msg": error.get("msg"), "type": error.get("type")}
            for error in exc.errors()
        ]
        return problem_response(
            422, "the request does not match the schema", instance=request.url.path, errors=errors
        )

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        # The exception's headers are part of the answer (405 Allow, 401 WWW-Authenticate).
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return problem_response(
            exc.status_code, str(exc.detail), instance=request.url.path, headers=headers or None
        )

    async def on_database_error(request: Request, exc: Exception) -> Response:
        if is_database_unavailable(exc):
            return database_unavailable_response(request.url.path, exc)
        return unexpected_error_response(request.url.path, exc)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        return unexpected_error_response(request.url.path, exc)

    app.add_exception_handler(KnowflowError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(sa_exc.DBAPIError, on_database_error)
    app.add_exception_handler(sa_exc.TimeoutError, on_database_error)
    # Starlette runs this one outside every middleware; RequestContextMiddleware renders
    # the errors that pass through it itself, with the request id. This is the backstop.
    app.add_exception_handler(Exception, on_unexpected)


class BodyTooLarge(StarletteHTTPException):
    """An HTTPException, so FastAPI's body parsing re-raises it instead of making it a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


class RequestContextMiddleware:
    """Request id, trace context, body size cap, access log and HTTP metrics (pure ASGI)."""

    def __init__(self, app: ASGIApp, *, service: str, max_body_bytes: int) -> None:
        self.app = app
        self.service = service
        self.max_body_bytes = max_body_bytes
        self.access_log = logging.getLogger("knowflow.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:128] or new_request_id()
        traceparent = child_traceparent(headers.get(b"traceparent", b"").decode("latin-1"))
        prefix = headers.get(b"x-forwarded-prefix", b"").decode("latin-1")
        prefix_token = forwarded_prefix_var.set(prefix if prefix.startswith("/") else "")
        request_id_token = request_id_var.set(request_id)
        trace_token = traceparent_var.set(traceparent)
        started = time.perf_counter()
        status_holder = {"status": 500, "started": False}

        async def send_with_context(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                    (b"traceparent", traceparent.encode("latin-1")),
                ]
            await send(message)

        received = 0

        async def receive_capped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        try:
            if declared > self.max_body_bytes:
                raise BodyTooLarge(self.max_body_bytes)
            await self.app(scope, receive_capped, send_with_context)
        except BodyTooLarge as exc:
            if status_holder["started"]:
                raise
            response = problem_response(413, exc.detail, instance=scope.get("path"))
            await response(scope, receive, send_with_context)
        except Exception as exc:
            # Rendered here, not by Starlette's outermost handler: there the request id is
            # already reset (500 bodies said `request_id: null`), and that handler re-raises,
            # so uvicorn would close the keep-alive connection under the gateway's pool.
            if status_holder["started"]:
                raise
            response = unexpected_error_response(scope.get("path"), exc)
            await response(scope, receive, send_with_context)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            status = status_holder["status"]
            HTTP_REQUESTS.labels(self.service, scope["method"], route, str(status)).inc()
            HTTP_LATENCY.labels(self.service, scope["method"], route).observe(elapsed)
            self.access_log.info(
                "%s %s %s %.1fms", scope["method"], scope.get("path"), status, elapsed * 1000
            )
            request_id_var.reset(request_id_token)
            traceparent_var.reset(trace_token)
            forwarded_prefix_var.reset(prefix_token)


@dataclass
class ServiceSpec:
    """What makes one service: its routers, tables, consumers and start-up hook."""

    name: str
    title: str
    routers: Sequence[APIRouter]
    tables: Sequence[type[SQLModel]]
    consumers: Callable[[Settings], Sequence[Consumer]] = lambda _settings: ()
    on_startup: Callable[[FastAPI], Awaitable[None]] | None = None
    on_shutdown: Callable[[FastAPI], Awaitable[None]] | None = None
    readiness_checks: Sequence[Callable[[FastAPI], Awaitable[None]]] = field(default_factory=tuple)
    # What `/readyz` tells besides its checks, never making the service unready (e.g. search
    # running keyword-only without its embedding model, and the embedding backlog).
    readiness_details: Callable[[FastAPI], Awaitable[dict[str, Any]]] | None = None
    description: str = ""
    migrations: Path | None = None  # this service's Alembic revisions
    # POST paths whose answers must not be stored for Idempotency-Key replay (fresh tokens).
    unstored_replies: frozenset[str] = frozenset()

    @property
    def all_tables(self) -> list[type[SQLModel]]:
        """The service's tables plus the kit's outbox, processed-event and idempotency tables."""
        return [OutboxMessage, ProcessedEvent, IdempotencyRecord, *self.tables]

    def prepare_database(self, engine: Engine) -> None:
        """Migrate to head; services without a history (kit tests) get their tables created."""
        if self.migrations is not None:
            upgrade(engine, self.migrations, self.all_tables)
        else:
            create_tables(engine, self.all_tables)


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: database and event bus reachable",
        responses={503: {"model": Problem}},
    )
    async def readyz(request: Request) -> Response:
        app = request.app
        checks: dict[str, str] = {}
        try:
            await asyncio.to_thread(check_database, app.state.engine)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unavailable: {type(exc).__name__}"
        bus: Bus | None = getattr(app.state, "bus", None)
        checks["bus"] = "ok" if bus is not None and bus.is_connected else "unavailable"
        for runner in app.state.consumer_runners:
            # A consumer waiting for its database or OpenSearch is not keeping up.
            if runner.paused:
                checks[f"consumer:{runner.consumer.durable}"] = f"paused: {runner.paused_by}"
        spec: ServiceSpec = app.state.spec
        for check in spec.readiness_checks:
            name = check.__name__.removeprefix("check_")
            try:
                await check(app)
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"unavailable: {type(exc).__name__}"
        details = await spec.readiness_details(app) if spec.readiness_details else {}
        if all(value == "ok" for value in checks.values()):
            return JSONResponse({"status": "ready", "checks": checks, **details})
        return problem_response(503, "not ready", checks=checks, **details)

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        app = request.app
        OUTBOX_BACKLOG.labels(app.state.spec.name).set(
            await asyncio.to_thread(outbox_backlog, app.state.engine)
        )
        bus: Bus | None = getattr(app.state, "bus", None)
        if bus is not None:
            for runner in app.state.consumer_runners:
                try:
                    info = await bus.js.consumer_info(bus.stream, runner.consumer.durable)
                    CONSUMER_LAG.labels(runner.consumer.durable).set(info.num_pending or 0)
                except Exception:
                    log.debug("consumer info unavailable for %s", runner.consumer.durable)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def create_service_app(
    spec: ServiceSpec,
    *,
    settings: Settings | None = None,
    verifier: TokenVerifier | None = None,
) -> FastAPI:
    """A FastAPI app whose lifespan owns the database, the bus, the relay and consumers."""
    settings = settings or get_settings()
    configure_logging(spec.name, settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = make_engine(settings.database_url)
        await asyncio.to_thread(spec.prepare_database, app.state.engine)
        app.state.verifier = verifier or TokenVerifier.for_settings(settings)
        app.state.bus = await Bus.connect(
            settings.nats_url, stream=settings.stream_name, name=spec.name
        )
        tasks: list[asyncio.Task[None]] = []
        relay = OutboxRelay(
            app.state.engine,
            app.state.bus,
            on_published=EVENTS_PUBLISHED.labels(spec.name).inc,
        )
        tasks.append(asyncio.create_task(relay.run(), name=f"{spec.name}-outbox-relay"))
        tasks.append(
            asyncio.create_task(prune_forever(app.state.engine), name=f"{spec.name}-idempotency")
        )
        if spec.on_startup:
            await spec.on_startup(app)
        # After on_startup (identity installs its own verifier there), before any request:
        # the revocations still in force are read first, then followed.
        app.state.revocation_feed = RevocationFeed(
            app.state.bus, app.state.verifier.revocations, name=spec.name
        )
        await app.state.revocation_feed.start()
        app.state.consumer_runners = []
        for consumer in spec.consumers(settings):
            consumer.max_deliveries = settings.max_deliveries
            consumer.on_outcome = _count_outcomes(spec.name, consumer.durable)
            runner = ConsumerRunner(app.state.engine, app.state.bus, consumer)
            app.state.consumer_runners.append(runner)
            tasks.append(asyncio.create_task(runner.run(), name=consumer.durable))
        log.info("%s started", spec.name)
        try:
            yield
        finally:
            await stop_tasks(tasks)
            await app.state.revocation_feed.stop()
            if spec.on_shutdown:
                await spec.on_shutdown(app)
            await app.state.bus.close()
            app.state.engine.dispose()

    app = FastAPI(
        title=spec.title,
        description=spec.description,
        version="1.0.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.spec = spec
    app.state.consumer_runners = []
    install_problem_handlers(app)
    app.add_middleware(
        RequestContextMiddleware, service=spec.name, max_body_bytes=settings.max_body_bytes
    )
    app.include_router(health_router())
    for router in spec.routers:
        for route in router.routes:
            if not isinstance(route, APIRoute) or "POST" not in (route.methods or ()):
                continue
            if not isinstance(route, IdempotentRoute):
                raise TypeError(f"POST {route.path}: use APIRouter(route_class=IdempotentRoute)")
        app.include_router(router, dependencies=[Depends(refuse_nul_characters)])
    install_contract_openapi(
        app,
        [route for router in spec.routers for route in router.routes],
        unstored=spec.unstored_replies,
    )
    return app


def _count_outcomes(service: str, consumer: str) -> Callable[[str], None]:
    def count(outcome: str) -> None:
        EVENTS_CONSUMED.labels(service, consumer, outcome).inc()

    return count
