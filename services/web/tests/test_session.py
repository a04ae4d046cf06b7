"""The session cookie: signed (a browser cannot make one up), HttpOnly, and its CSRF check."""

import time

import jwt

from services.web.pages.base import safe_next
from services.web.session import Session, SessionCookies

SECRET = b"0" * 64


def tokens(role: str = "member", expires_in: int = 900) -> dict[str, object]:
    access = jwt.encode({"sub": "u1", "role": role, "exp": int(time.time()) + expires_in}, "k" * 32)
    return {
        "access_token": access,
        "refresh_token": "refresh-1",
        "refresh_expires_in": 3600,
        "user": {"id": "u1", "handle": "ada", "display_name": "Ada"},
    }


def cookies(secure: bool = False) -> SessionCookies:
    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not called")

    return SessionCookies(app, secret=SECRET, secure=secure)


def cookie_value(header: bytes) -> str:
    return header.decode().split(";", 1)[0].split("=", 1)[1]


def test_a_signed_in_session_survives_the_round_trip_through_the_cookie() -> None:
    session = Session()
    session.sign_in(tokens(role="admin"))
    middleware = cookies()
    loaded = middleware.load(cookie_value(middleware.cookie_header(session)))
    assert loaded.signed_in
    assert loaded.person is not None and loaded.person.handle == "ada"
    assert loaded.person.is_admin
    assert loaded.csrf == session.csrf
    assert not loaded.changed


def test_a_tampered_or_foreign_cookie_is_a_new_visitor() -> None:
    session = Session()
    session.sign_in(tokens())
    value = cookie_value(cookies().cookie_header(session))
    tampered = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    for raw in (tampered, "garbage", ""):
        loaded = cookies().load(raw)
        assert not loaded.signed_in
        assert loaded.changed  # gets a fresh cookie
    other_key = SessionCookies(cookies().app, secret=b"1" * 64, secure=False)
    assert not other_key.load(value).signed_in


def test_the_cookie_is_httponly_lax_and_secure_behind_tls() -> None:
    session = Session()
    session.sign_in(tokens())
    plain = cookies().cookie_header(session).decode()
    assert "HttpOnly" in plain and "SameSite=Lax" in plain and "Secure" not in plain
    assert "Max-Age=" in plain
    assert "Secure" in cookies(secure=True).cookie_header(session).decode()


def test_signing_in_and_out_changes_the_csrf_secret_but_a_refresh_does_not() -> None:
    session = Session()
    visitor_secret = session.csrf
    session.sign_in(tokens())
    signed_in_secret = session.csrf
    assert signed_in_secret != visitor_secret
    session.keep(tokens())
    assert session.csrf == signed_in_secret
    assert session.check_csrf(signed_in_secret)
    assert not session.check_csrf(visitor_secret)
    assert not session.check_csrf(None)
    session.sign_out()
    assert not session.signed_in and not session.check_csrf(signed_in_secret)


def test_an_access_token_about_to_expire_is_refreshed_first() -> None:
    session = Session()
    session.sign_in(tokens(expires_in=30))
    assert session.access_expires_soon()
    session.keep(tokens(expires_in=900))
    assert not session.access_expires_soon()


def test_after_signing_in_people_only_go_to_pages_of_this_site() -> None:
    assert safe_next("/questions/1?x=2") == "/questions/1?x=2"
    for elsewhere in (
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "",
        None,
        "javascript:alert(1)",
        "/\x00x",
    ):
        assert safe_next(elsewhere) == "/"
