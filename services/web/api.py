"""The public API, called as the signed-in person: the only way the web app reads or
changes anything (it is a client of the API like any other front end).

Errors are raised as an exception hierarchy the pages render:

    ApiError             the API answered with a problem (status and detail kept)
    ├── SignInRequired   401: no session, or the API no longer accepts it
    ApiUnavailable       the gateway could not be reached, or answered 502/503/504
"""

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from services.web.session import Session
from shared.observability import request_id_var

API_PREFIX = "/api/v1"
# How long a refresh's answer is kept for the session's other requests that raced it (a
# refresh token is single use: a second use would end the session).
REFRESH_REUSE_SECONDS = 30.0
# The largest page the API serves (`shared.pagination.MAX_PAGE_SIZE`): fewest round trips.
ALL_PAGE_SIZE = 100


class ApiError(Exception):
    """The API refused; `detail` is its problem's detail, fit to show the person."""

    def __init__(self, status: int, detail: str, problem: Mapping[str, Any] | None = None):
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.problem = dict(problem or {})

    @property
    def field_errors(self) -> dict[str, str]:
        """Validation errors by field name (422 problems list them in `errors`)."""
        errors: dict[str, str] = {}
        for error in self.problem.get("errors", []) or []:
            location = error.get("loc") or []
            name = str(location[-1]) if location else ""
            errors.setdefault(name, str(error.get("msg", "")))
        return errors


class SignInRequired(ApiError):
    """The person must sign in (again)."""


class ApiUnavailable(Exception):
    """Knowflow's API cannot answer now; the page says so and asks to retry."""

    def __init__(self, retry_after: int = 5) -> None:
        super().__init__("the API is unavailable")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Forwarding:
    """Whom the web app calls the API for: the person's address, and the key that makes
    the gateway believe it (see gateway.security.TrustedForwarder)."""

    key: str
    address: str | None

    def headers(self) -> dict[str, str]:
        if not self.address:
            return {}
        return {"x-forwarded-for": self.address, "x-knowflow-forwarding-key": self.key}


class Refreshes:
    """Refreshes one session at a time and shares the result with its racing requests."""

    def __init__(self) -> None:
        self.locks: dict[str, asyncio.Lock] = {}
        self.results: dict[str, tuple[float, dict[str, Any]]] = {}

    async def refresh(
        self, client: httpx.AsyncClient, refresh_token: str, forwarding: Forwarding
    ) -> dict[str, Any]:
        lock = self.locks.setdefault(refresh_token, asyncio.Lock())
        async with lock:
            now = time.monotonic()
            for token, (at, _result) in list(self.results.items()):
                if now - at > REFRESH_REUSE_SECONDS:
                    del self.results[token]
                    self.locks.pop(token, None)
            kept = self.results.get(refresh_token)
            if kept is not None:
                return kept[1]
            try:
                response = await send(
                    client,
                    "POST",
                    f"{API_PREFIX}/auth/refresh",
                    forwarding=forwarding,
                    json={"refresh_token": refresh_token},
                )
                tokens = answer(response)
            except (ApiError, ApiUnavailable):
                # No result to share: the lock goes too (it would never be pruned).
                self.locks.pop(refresh_token, None)
                raise
            self.results[refresh_token] = (time.monotonic(), tokens)
            return tokens


async def send(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    forwarding: Forwarding,
    token: str | None = None,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """One request to the API; an unreachable gateway is `ApiUnavailable`."""
    outgoing = {"x-request-id": request_id_var.get() or "", **forwarding.headers()}
    if token is not None:
        outgoing["authorization"] = f"Bearer {token}"
    outgoing.update(headers or {})
    try:
        return await client.request(
            method, path, params=_clean(params), json=json, headers=outgoing
        )
    except httpx.TransportError as exc:
        raise ApiUnavailable() from exc


def answer(response: httpx.Response) -> Any:
    """The JSON body of a success, or the problem raised as `ApiError`."""
    if response.status_code in (502, 503, 504):
        retry_after = response.headers.get("retry-after", "5")
        raise ApiUnavailable(int(retry_after) if retry_after.isdigit() else 5)
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        if not isinstance(problem, dict):
            problem = {}
        detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase)
        error = SignInRequired if response.status_code == 401 else ApiError
        raise error(response.status_code, detail, problem)
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def _clean(params: Mapping[str, Any] | None) -> httpx.QueryParams | None:
    """Query parameters without the empty ones; lists repeat the name."""
    if params is None:
        return None
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    for name, value in params.items():
        if value is None or value == "":
            continue
        values = value if isinstance(value, list | tuple) else [value]
        pairs.extend(
            (name, str(item).lower() if isinstance(item, bool) else str(item)) for item in values
        )
    return httpx.QueryParams(pairs)


class Api:
    """The public API as this browser's person (or an anonymous visitor) calls it."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        session: Session,
        refreshes: Refreshes,
        forwarding: Forwarding,
    ) -> None:
        self.client = client
        self.session = session
        self.refreshes = refreshes
        self.forwarding = forwarding

    async def token(self) -> str | None:
        """The access token, refreshed first if it is about to expire."""
        session = self.session
        if session.refresh_token is not None and session.access_expires_soon():
            try:
                session.keep(
                    await self.refreshes.refresh(
                        self.client, session.refresh_token, self.forwarding
                    )
                )
            except ApiError as exc:
                session.sign_out()
                raise SignInRequired(401, "your session has ended; please sign in again") from exc
        return session.access_token

    async def respond(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Any, httpx.Headers]:
        """The API's answer as this person, and its headers."""
        token = await self.token()
        response = await send(
            self.client,
            method,
            f"{API_PREFIX}{path}",
            forwarding=self.forwarding,
            token=token,
            params=params,
            json=json,
            headers=headers,
        )
        try:
            return answer(response), response.headers
        except SignInRequired:
            if token is not None:  # revoked, deactivated, or signed out elsewhere
                self.session.sign_out()
            raise

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        body, _headers = await self.respond(method, path, params=params, json=json, headers=headers)
        return body

    async def get_with_etag(self, path: str, **params: Any) -> tuple[Any, str | None]:
        """An item and its ETag, to change it later only if nobody changed it meanwhile."""
        body, headers = await self.respond("GET", path, params=params)
        return body, headers.get("etag")

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params=params)

    async def get_all(self, path: str, **params: Any) -> list[Any]:
        """Every item of a paged list, following `next_cursor` page by page (for a page that
        needs them all: a group picker, "do I follow this?")."""
        items: list[Any] = []
        cursor: str | None = None
        while True:
            page = await self.get(path, **params, limit=ALL_PAGE_SIZE, cursor=cursor)
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return items

    async def post(self, path: str, json: Any = None, **params: Any) -> Any:
        return await self.request("POST", path, json=json, params=params or None)

    async def put(self, path: str, json: Any = None) -> Any:
        return await self.request("PUT", path, json=json)

    async def patch(self, path: str, json: Any, *, etag: str | None = None) -> Any:
        headers = {"if-match": etag} if etag else None
        return await self.request("PATCH", path, json=json, headers=headers)

    async def delete(self, path: str) -> Any:
        return await self.request("DELETE", path)

    @asynccontextmanager
    async def stream(self, path: str, headers: Mapping[str, str]) -> AsyncIterator[httpx.Response]:
        """A streamed GET (Server-Sent Events), as this person."""
        token = await self.token()
        outgoing = {**self.forwarding.headers(), **headers}
        if token:
            outgoing["authorization"] = f"Bearer {token}"
        request = self.client.build_request("GET", f"{API_PREFIX}{path}", headers=outgoing)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise ApiUnavailable() from exc
        try:
            if response.status_code >= 400:
                await response.aread()
                answer(response)
            yield response
        finally:
            await response.aclose()
