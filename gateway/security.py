"""What the gateway adds at the edge: security headers, CORS for allowed origins, the
/metrics token.

Headers are added to every response the gateway sends (forwarded, its own, problems,
CORS preflights) by one `send` wrapper; a header the response already carries wins, so a
service can choose its own `Cache-Control` and the docs page its own CSP.
"""

import base64
import hashlib
import hmac
import re

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.routing import FORWARDED_METHODS
from shared.errors import problem_response
from shared.observability import new_request_id
from shared.settings import Settings

# JSON answers are never a document to render: nothing may load, nobody may frame them.
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
NO_STORE = (b"cache-control", b"no-store")

# What a browser front end may send and read (bearer tokens, no cookies: no credentials).
CORS_ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "If-None-Match",
    "traceparent",
    "X-Request-ID",
)
CORS_EXPOSE_HEADERS = (
    "ETag",
    "Location",
    "RateLimit",
    "RateLimit-Policy",
    "Retry-After",
    "WWW-Authenticate",
    "X-Request-ID",
)


def edge_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    """The headers every gateway response carries."""
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"content-security-policy", API_CSP),
    ]
    if settings.hsts_max_age > 0:
        value = f"max-age={settings.hsts_max_age}; includeSubDomains".encode("ascii")
        headers.append((b"strict-transport-security", value))
    return headers


FORWARDING_KEY_HEADER = b"x-knowflow-forwarding-key"


class TrustedForwarder:
    """Whose address a request is. The web app calls the API for people, all from its own
    address; with the key it shares with the gateway, its `X-Forwarded-For` names the
    person's, and the gateway takes that as the client (its per-address throttles, the
    `X-Forwarded-For` services read for audit). From anyone else the header is ignored."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def resolve(self, scope: Scope) -> None:
        presented = forwarded_for = None
        for name, value in scope["headers"]:
            if name == FORWARDING_KEY_HEADER:
                presented = value
            elif name == b"x-forwarded-for":
                forwarded_for = value
        if presented is None or forwarded_for is None:
            return
        if hmac.compare_digest(presented, self.key):
            address = forwarded_for.split(b",")[0].strip().decode("latin-1")[:64]
            if address:
                scope["client"] = (address, 0)


class EdgeHeaders:
    """Adds the edge headers, and `Cache-Control: no-store` to answers that may be personal:
    requests with credentials, and writes (login and registration answers carry tokens)."""

    def __init__(self, settings: Settings) -> None:
        self.headers = edge_headers(settings)
        self.headers_no_store = [*self.headers, NO_STORE]
        self.names = frozenset(name for name, _ in self.headers_no_store)

    def wrap(self, scope: Scope, send: Send) -> Send:
        """`send` with the headers added to the response start."""
        no_store = scope["method"] not in ("GET", "HEAD") or any(
            name == b"authorization" for name, _ in scope["headers"]
        )
        extra = self.headers_no_store if no_store else self.headers
        names = self.names

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                if present.isdisjoint(names):  # the common case: nothing to leave out
                    headers += extra
                else:
                    headers += [header for header in extra if header[0] not in present]
                message["headers"] = headers
            await send(message)

        return send_with_headers


def docs_csp(html: bytes) -> str:
    """A CSP for the Swagger UI page: its assets from this origin (served by the gateway
    from a package, so /docs works offline), its one inline script by hash (no
    'unsafe-inline' for scripts), API calls to this origin only."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode("ascii") + "'"
        for script in re.findall(rb"<script>(.*?)</script>", html, re.DOTALL)
    )
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src 'self' {hashes}",
            # Swagger UI sets inline styles; styles cannot run code.
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        )
    )


class GatewayCORS(CORSMiddleware):
    """Starlette's CORS, but no CORS header at all for an origin not on the list
    (Starlette still sends its expose list), preflights answered 204 when allowed and a
    403 problem when refused (Starlette: 400 text with its headers)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                await self.preflight(scope, headers)(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        origin = request_headers.get("origin")
        if (
            message["type"] == "http.response.start"
            and origin
            and not self.is_allowed_origin(origin)
        ):
            MutableHeaders(scope=message).add_vary_header("Origin")
            await send(message)
            return
        await super().send(message, send, request_headers)

    def preflight(self, scope: Scope, headers: Headers) -> Response:
        answer = self.preflight_response(request_headers=headers)
        if answer.status_code == 200:
            allowed = {
                name: value
                for name, value in answer.headers.items()
                if name not in ("content-length", "content-type")
            }
            return Response(status_code=204, headers=allowed)
        request_id = headers.get("x-request-id", "")[:128] or new_request_id()
        detail = bytes(answer.body).decode("utf-8", "replace").replace("Disallowed", "refused:")
        response = problem_response(
            403, f"CORS preflight {detail}", instance=scope["path"], request_id=request_id
        )
        response.headers["x-request-id"] = request_id
        response.headers["vary"] = "Origin"
        return response


def cors(settings: Settings, app: ASGIApp) -> ASGIApp:
    """`app` behind CORS for the configured origins; `app` itself when none (closed)."""
    if not settings.cors_origins:
        return app
    return GatewayCORS(
        app,
        allow_origins=settings.cors_origins,
        allow_methods=sorted(FORWARDED_METHODS),
        allow_headers=CORS_ALLOW_HEADERS,
        expose_headers=CORS_EXPOSE_HEADERS,
        allow_credentials=False,
        max_age=600,
    )


def metrics_authorized(scope: Scope, token: str) -> bool:
    """The request carries `Authorization: Bearer <token>` (compared in constant time)."""
    expected = b"Bearer " + token.encode("utf-8")
    for name, value in scope["headers"]:
        if name == b"authorization":
            return hmac.compare_digest(value, expected)
    return False
