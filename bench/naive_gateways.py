"""The naive gateways the benchmark compares against: FastAPI catch-all routes with a shared client.

Both use the same routing table and token check as the real gateway; only the HTTP
stack differs. `uvicorn bench.naive_gateways:httpx_app` or `...:aiohttp_app`.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import httpx
from fastapi import FastAPI, Request, Response

from gateway.routing import RouteTable, is_public, upstream_urls
from shared.auth import TokenVerifier, bearer_token
from shared.errors import Unauthorized
from shared.settings import get_settings

settings = get_settings()
table = RouteTable()
urls = upstream_urls(settings)
verifier = TokenVerifier(
    issuer=settings.jwt_issuer,
    audience=settings.jwt_audience,
    jwks_url=settings.resolved_jwks_url,
)
SKIP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}
METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE"]


async def check(request: Request, path: str) -> Response | None:
    if is_public(request.method, path):
        return None
    try:
        token = bearer_token(request.headers.get("authorization"))
        await asyncio.to_thread(verifier.verify, token)
    except Unauthorized as exc:
        return Response(exc.detail, status_code=401)
    return None


@asynccontextmanager
async def httpx_lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=512)) as client:
        app.state.client = client
        yield


httpx_app = FastAPI(lifespan=httpx_lifespan)


@httpx_app.api_route("/api/v1/{rest:path}", methods=METHODS)
async def forward_httpx(request: Request, rest: str) -> Response:
    """Forward with a shared httpx.AsyncClient, buffering the whole answer."""
    matched = table.match(request.url.path)
    if matched is None:
        return Response(status_code=404)
    if (refused := await check(request, request.url.path)) is not None:
        return refused
    route, upstream_path = matched
    headers = {k: v for k, v in request.headers.items() if k not in SKIP}
    client: httpx.AsyncClient = request.app.state.client
    upstream = await client.request(
        request.method,
        urls[route.service] + upstream_path,
        params=request.query_params,
        headers=headers,
        content=await request.body(),
    )
    out = {k: v for k, v in upstream.headers.items() if k not in SKIP}
    return Response(upstream.content, status_code=upstream.status_code, headers=out)


@asynccontextmanager
async def aiohttp_lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:
        app.state.session = session
        yield


aiohttp_app = FastAPI(lifespan=aiohttp_lifespan)


@aiohttp_app.api_route("/api/v1/{rest:path}", methods=METHODS)
async def forward_aiohttp(request: Request, rest: str) -> Response:
    """Forward with a shared aiohttp ClientSession, buffering the whole answer."""
    matched = table.match(request.url.path)
    if matched is None:
        return Response(status_code=404)
    if (refused := await check(request, request.url.path)) is not None:
        return refused
    route, upstream_path = matched
    headers = {k: v for k, v in request.headers.items() if k not in SKIP}
    session: aiohttp.ClientSession = request.app.state.session
    async with session.request(
        request.method,
        urls[route.service] + upstream_path,
        params=list(request.query_params.multi_items()),
        headers=headers,
        data=await request.body(),
    ) as upstream:
        content = await upstream.read()
        out = {k: v for k, v in upstream.headers.items() if k.lower() not in SKIP}
        return Response(content, status_code=upstream.status, headers=out)
