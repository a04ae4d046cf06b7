"""Access tokens: RFC 9068 `typ`, bounded lifetime, key rotation and the rate-limited JWKS refetch."""

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import uuid4

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.auth import (
    ALGORITHM,
    KeyFiles,
    TokenIssuer,
    TokenVerifier,
    key_id,
)
from shared.errors import Unauthorized, Unavailable

ISSUER = "knowflow-identity"
AUDIENCE = "knowflow"


def signed(key: Ed25519PrivateKey, *, headers: dict[str, Any] | None = None, **claims: Any) -> str:
    """A token signed with `key`, with the given header fields and claims over sane defaults."""
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid4()),
        "handle": "ada",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    body.update(claims)
    header = {"kid": key_id(key.public_key()), "typ": "at+jwt", **(headers or {})}
    return jwt.encode(body, key, algorithm=ALGORITHM, headers=header)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def verifier(key: Ed25519PrivateKey) -> TokenVerifier:
    jwks = TokenIssuer(key, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=300).jwks()
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, max_lifetime_seconds=3600)


def test_issued_tokens_are_typed_at_jwt_and_verify(key: Ed25519PrivateKey) -> None:
    issuer = TokenIssuer(key, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=300)
    token = issuer.issue(user_id=uuid4(), handle="ada")
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=issuer.jwks())
    assert verifier.verify(token).handle == "ada"


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "id_token+jwt", ""])
def test_a_token_without_the_access_token_typ_is_refused(
    key: Ed25519PrivateKey, verifier: TokenVerifier, typ: str | None
) -> None:
    token = signed(key, headers={"typ": typ})
    assert jwt.get_unverified_header(token).get("typ") == (typ or None)
    with pytest.raises(Unauthorized, match="typ"):
        verifier.verify(token)


def test_the_media_type_spelling_of_the_typ_is_accepted(
    key: Ed25519PrivateKey, verifier: TokenVerifier
) -> None:
    assert verifier.verify(signed(key, headers={"typ": "application/AT+JWT"})).handle == "ada"


def test_a_token_living_longer_than_the_maximum_is_refused(
    key: Ed25519PrivateKey, verifier: TokenVerifier
) -> None:
    now = int(time.time())
    with pytest.raises(Unauthorized, match="lifetime"):
        verifier.verify(signed(key, iat=now, exp=now + 3601))
    assert verifier.verify(signed(key, iat=now, exp=now + 3600)).handle == "ada"


def test_a_token_issued_in_the_future_is_refused_beyond_the_leeway(
    key: Ed25519PrivateKey, verifier: TokenVerifier
) -> None:
    now = int(time.time())
    with pytest.raises(Unauthorized):
        verifier.verify(signed(key, iat=now + 600, nbf=now, exp=now + 900))
    # A few seconds of clock skew between identity and this host are fine.
    assert verifier.verify(signed(key, iat=now + 5, nbf=now + 5, exp=now + 300)).handle == "ada"


class JwksServer:
    """A real HTTP server publishing a JWKS that the test can change, counting fetches."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.jwks = jwks
        self.fetches = 0
        self.down = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                if outer.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps(outer.jwks).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def __enter__(self) -> "JwksServer":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def key_files(tmp_path: Path) -> KeyFiles:
    return KeyFiles(tmp_path / "jwt.pem")


@pytest.fixture
def jwks_server(key_files: KeyFiles) -> Iterator[JwksServer]:
    with JwksServer(key_files.load_or_create().jwks()) as server:
        yield server


def test_forged_unknown_kids_fetch_the_jwks_at_most_once_per_interval(
    key_files: KeyFiles, jwks_server: JwksServer
) -> None:
    verifier = TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_server.url, refetch_seconds=60
    )
    verifier.refresh(force=True)
    assert jwks_server.fetches == 1
    attacker = Ed25519PrivateKey.generate()
    for index in range(50):
        with pytest.raises(Unauthorized, match="unknown key"):
            verifier.verify(signed(attacker, headers={"kid": f"forged-{index}"}))
    assert jwks_server.fetches == 1


def test_an_unknown_kid_refetches_the_jwks_once_the_interval_has_passed(
    key_files: KeyFiles, jwks_server: JwksServer
) -> None:
    verifier = TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_server.url, refetch_seconds=0.5
    )
    verifier.refresh(force=True)
    brand_new = Ed25519PrivateKey.generate()
    jwks_server.jwks = {"keys": [*jwks_server.jwks["keys"], *_jwks_of(brand_new)["keys"]]}
    time.sleep(0.6)
    assert verifier.verify(signed(brand_new)).handle == "ada"
    assert jwks_server.fetches == 2


def test_unreachable_keys_stay_503_and_are_not_hammered(
    key_files: KeyFiles, jwks_server: JwksServer
) -> None:
    verifier = TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_server.url, refetch_seconds=60
    )
    jwks_server.down = True
    attacker = Ed25519PrivateKey.generate()
    for index in range(20):
        with pytest.raises(Unavailable):
            verifier.verify(signed(attacker, headers={"kid": f"forged-{index}"}))
    assert jwks_server.fetches == 1


def test_rotation_publishes_current_and_next_and_keeps_the_previous(key_files: KeyFiles) -> None:
    before = key_files.load_or_create()
    assert before.next is not None
    published = {jwk["kid"] for jwk in before.jwks()["keys"]}
    assert published == {before.current_kid, before.next_kid}
    after = key_files.rotate(min_interval_seconds=0)
    assert after.current_kid == before.next_kid
    assert after.next_kid not in (before.current_kid, before.next_kid)
    kids = {jwk["kid"] for jwk in after.jwks()["keys"]}
    assert kids == {before.current_kid, after.current_kid, after.next_kid}
    assert all("d" not in jwk for jwk in after.jwks()["keys"])
    assert key_files.load().jwks() == after.jwks()


def test_a_second_rotation_within_a_token_lifetime_is_refused(key_files: KeyFiles) -> None:
    key_files.load_or_create()
    key_files.rotate(min_interval_seconds=3600)
    with pytest.raises(ValueError, match="rotated"):
        key_files.rotate(min_interval_seconds=3600)


def test_rotation_logs_nobody_out_and_the_new_key_verifies_without_a_refetch(
    key_files: KeyFiles, jwks_server: JwksServer
) -> None:
    issuer = TokenIssuer(key_files, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=300)
    verifier = TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_server.url, refetch_seconds=60
    )
    old_token = issuer.issue(user_id=uuid4(), handle="ada")
    assert verifier.verify(old_token).handle == "ada"
    rotated = key_files.rotate(min_interval_seconds=0)
    issuer.reload()
    new_token = issuer.issue(user_id=uuid4(), handle="grace")
    assert jwt.get_unverified_header(new_token)["kid"] == rotated.current_kid
    # The verifier already holds the next key: no round trip to identity.
    assert verifier.verify(new_token).handle == "grace"
    assert jwks_server.fetches == 1
    # After it refetches identity's new JWKS, tokens signed before rotation still verify.
    jwks_server.jwks = issuer.jwks()
    verifier.refresh(force=True)
    verifier._cache.clear()
    assert verifier.verify(old_token).handle == "ada"


def test_the_issuer_picks_up_a_rotation_done_by_another_process(key_files: KeyFiles) -> None:
    issuer = TokenIssuer(key_files, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=300)
    first = jwt.get_unverified_header(issuer.issue(user_id=uuid4(), handle="ada"))["kid"]
    rotated = KeyFiles(key_files.path).rotate(min_interval_seconds=0)
    time.sleep(1.1)  # the issuer looks at the files at most once a second
    token = issuer.issue(user_id=uuid4(), handle="ada")
    assert first != rotated.current_kid
    assert jwt.get_unverified_header(token)["kid"] == rotated.current_kid


def _jwks_of(key: Ed25519PrivateKey) -> dict[str, Any]:
    return TokenIssuer(key, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=60).jwks()
