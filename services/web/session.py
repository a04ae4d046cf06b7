"""The browser's session: the person's tokens and a CSRF secret in one signed cookie.

The cookie is `HttpOnly` (no script reads the tokens), `SameSite=Lax` (a single sign-on
comes back by a top-level GET from another site, which must carry it) and `Secure` when
Knowflow is reached over HTTPS. It is signed with itsdangerous, so a browser cannot make
one up; what it holds came from the API. Every form carries the session's CSRF secret and
every POST must bring it back (the synchronizer token pattern); a visitor who is not
signed in has a session too, so the sign-in form is protected the same way.
"""

import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "knowflow_session"
SCOPE_KEY = "knowflow.session"
# A signed-in session lasts as long as its refresh token; a visitor's until the browser closes.
DEFAULT_MAX_AGE_SECONDS = 30 * 24 * 3600
# Refresh the access token when it has less than this left, before calling the API.
REFRESH_MARGIN_SECONDS = 60
# Files and probes: no session read, no cookie set.
UNSESSIONED = ("/static/", "/healthz", "/readyz")


@dataclass
class Person:
    """Who is signed in, as the API described them at sign-in (for the page header)."""

    id: str
    handle: str
    display_name: str
    role: str = "member"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass
class Session:
    """One browser's session; `changed` sessions are written back as a cookie."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    access_token: str | None = None
    refresh_token: str | None = None
    refresh_expires_at: float = 0.0
    person: Person | None = None
    changed: bool = False

    @property
    def signed_in(self) -> bool:
        return self.access_token is not None and self.person is not None

    def sign_in(self, tokens: dict[str, Any]) -> None:
        """Keep the tokens of a sign-in, with a fresh CSRF secret."""
        self.keep(tokens)
        self.csrf = secrets.token_urlsafe(32)

    def keep(self, tokens: dict[str, Any]) -> None:
        """Keep the tokens of a sign-in or a refresh (the CSRF secret stays: other tabs'
        forms still hold it)."""
        user = tokens["user"]
        claims = unverified_claims(tokens["access_token"])
        self.access_token = tokens["access_token"]
        self.refresh_token = tokens["refresh_token"]
        self.refresh_expires_at = time.time() + int(tokens["refresh_expires_in"])
        self.person = Person(
            id=str(user["id"]),
            handle=str(user["handle"]),
            display_name=str(user.get("display_name") or user["handle"]),
            role=str(claims.get("role", "member")),
        )
        self.changed = True

    def sign_out(self) -> None:
        self.access_token = self.refresh_token = None
        self.person = None
        self.refresh_expires_at = 0.0
        self.csrf = secrets.token_urlsafe(32)
        self.changed = True

    def access_expires_soon(self) -> bool:
        if self.access_token is None:
            return False
        expires = unverified_claims(self.access_token).get("exp", 0)
        return float(expires) - time.time() < REFRESH_MARGIN_SECONDS

    def check_csrf(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())

    def to_cookie(self) -> dict[str, Any]:
        data: dict[str, Any] = {"c": self.csrf}
        if self.signed_in and self.person is not None:
            data |= {
                "a": self.access_token,
                "r": self.refresh_token,
                "x": self.refresh_expires_at,
                "p": [self.person.id, self.person.handle, self.person.display_name],
                "o": self.person.role,
            }
        return data

    @classmethod
    def from_cookie(cls, data: dict[str, Any]) -> "Session":
        session = cls(csrf=str(data["c"]))
        if "a" in data:
            person_id, handle, display_name = data["p"]
            session.access_token = str(data["a"])
            session.refresh_token = str(data["r"])
            session.refresh_expires_at = float(data["x"])
            session.person = Person(person_id, handle, display_name, str(data["o"]))
        return session


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a token the API gave us, for display and timing only: the API
    verifies every token it is sent; the web app decides nothing on these."""
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims


class SessionCookies:
    """Reads the session cookie into the request scope; writes it back when it changed."""

    def __init__(self, app: ASGIApp, *, secret: bytes, secure: bool) -> None:
        self.app = app
        self.serializer = URLSafeSerializer(secret, salt="knowflow-web-session")
        self.secure = secure

    def load(self, raw: str | None) -> Session:
        if raw:
            try:
                return Session.from_cookie(self.serializer.loads(raw))
            except (BadSignature, KeyError, TypeError, ValueError):
                pass
        return Session(changed=True)  # a new visitor: set their cookie with this answer

    def cookie_header(self, session: Session) -> bytes:
        value = self.serializer.dumps(session.to_cookie())
        parts = [f"{COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
        if session.signed_in:
            remaining = int(session.refresh_expires_at - time.time())
            parts.append(f"Max-Age={max(0, min(remaining, DEFAULT_MAX_AGE_SECONDS))}")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts).encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNSESSIONED):
            await self.app(scope, receive, send)
            return
        session = self.load(HTTPConnection(scope).cookies.get(COOKIE))
        scope[SCOPE_KEY] = session

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and session.changed:
                headers = MutableHeaders(scope=message)
                headers.append("set-cookie", self.cookie_header(session).decode("latin-1"))
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def session_of(connection: HTTPConnection) -> Session:
    session: Session = connection.scope[SCOPE_KEY]
    return session
