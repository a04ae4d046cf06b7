"""Forged access tokens against the running platform: the gateway and the service both say 401.

The platform runs as real processes (NATS, identity, posts, search, digests, gateway).
Tokens that need identity's real key are signed with its key file, as an attacker who
stole it for a moment, or a misconfigured issuer, would.
"""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deploy.launch import Platform
from shared.auth import KeyFiles, SigningKeys, key_id
from tests.e2e.conftest import platform  # noqa: F401  (the running platform, module-scoped)

ISSUER = "knowflow-identity"
AUDIENCE = "knowflow"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid4()),
        "handle": "mallory",
        "admin": True,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)]
    )


def hs256(secret: bytes, header: dict[str, Any], payload: dict[str, Any]) -> str:
    """HMAC-signed by hand: PyJWT refuses to use a public key as an HMAC secret."""
    signing_input = ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode())]
    ).encode()
    return (
        f"{signing_input.decode()}.{b64(hmac.new(secret, signing_input, hashlib.sha256).digest())}"
    )


def eddsa(key: Ed25519PrivateKey, payload: dict[str, Any], **header: Any) -> str:
    fields = {"kid": key_id(key.public_key()), "typ": "at+jwt", **header}
    return jwt.encode(payload, key, algorithm="EdDSA", headers=fields)


def keys_of(running: Platform) -> SigningKeys:
    return KeyFiles(running.var_dir / "identity" / "jwt-ed25519.pem").load()


def tampered(running: Platform) -> str:
    """A genuine token whose payload was changed afterwards (made admin, another subject)."""
    genuine = eddsa(keys_of(running).current, claims(admin=False))
    header, _payload, signature = genuine.split(".")
    forged_payload = b64(json.dumps(claims(admin=True)).encode())
    return f"{header}.{forged_payload}.{signature}"


def public_key_secrets(running: Platform) -> tuple[bytes, bytes]:
    public = keys_of(running).current.public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return pem, raw


def current_kid(running: Platform) -> str:
    return keys_of(running).current_kid


Forger = Callable[[Platform], str]


def now() -> int:
    """The time when a token is forged (at the test, not at import: a long suite outlives +600 s)."""
    return int(time.time())


FORGED: dict[str, Forger] = {
    "alg none": lambda p: unsigned(
        {"alg": "none", "typ": "at+jwt", "kid": current_kid(p)}, claims()
    ),
    "alg none, upper case": lambda p: unsigned(
        {"alg": "NONE", "typ": "at+jwt", "kid": current_kid(p)}, claims()
    ),
    "HS256 keyed with the public key PEM": lambda p: hs256(
        public_key_secrets(p)[0], {"alg": "HS256", "typ": "at+jwt", "kid": current_kid(p)}, claims()
    ),
    "HS256 keyed with the raw public key": lambda p: hs256(
        public_key_secrets(p)[1], {"alg": "HS256", "typ": "at+jwt", "kid": current_kid(p)}, claims()
    ),
    "RS256 with an attacker key and the real kid": lambda p: jwt.encode(
        claims(),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        algorithm="RS256",
        headers={"kid": current_kid(p), "typ": "at+jwt"},
    ),
    "EdDSA with an attacker key and the real kid": lambda p: eddsa(
        Ed25519PrivateKey.generate(), claims(), kid=current_kid(p)
    ),
    "unknown kid": lambda p: eddsa(Ed25519PrivateKey.generate(), claims()),
    "no kid": lambda p: jwt.encode(
        claims(), keys_of(p).current, algorithm="EdDSA", headers={"typ": "at+jwt"}
    ),
    "tampered payload": tampered,
    "expired": lambda p: eddsa(
        keys_of(p).current, claims(iat=now() - 1000, nbf=now() - 1000, exp=now() - 300)
    ),
    "wrong audience": lambda p: eddsa(keys_of(p).current, claims(aud="another-system")),
    "no audience": lambda p: eddsa(keys_of(p).current, claims(aud=None)),
    "wrong issuer": lambda p: eddsa(keys_of(p).current, claims(iss="https://evil.example")),
    "typ JWT": lambda p: eddsa(keys_of(p).current, claims(), typ="JWT"),
    "typ of an ID token": lambda p: eddsa(keys_of(p).current, claims(), typ="id_token+jwt"),
    "no typ": lambda p: eddsa(keys_of(p).current, claims(), typ=None),
    "over-long lifetime": lambda p: eddsa(keys_of(p).current, claims(exp=now() + 7 * 24 * 3600)),
    "not yet valid (nbf)": lambda p: eddsa(
        keys_of(p).current, claims(nbf=now() + 600, exp=now() + 900)
    ),
    "issued in the future (iat)": lambda p: eddsa(
        keys_of(p).current, claims(iat=now() + 600, nbf=None, exp=now() + 900)
    ),
    "no expiry": lambda p: eddsa(keys_of(p).current, claims(exp=None)),
    "subject not a user id": lambda p: eddsa(keys_of(p).current, claims(sub="admin")),
    "not a JWT": lambda p: "not.a.jwt",
}


def assert_refused(response: httpx.Response, *, challenge: bool = True) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401
    if challenge:
        assert response.headers["www-authenticate"].startswith("Bearer")


def register(running: Platform, handle: str) -> dict[str, Any]:
    response = httpx.post(
        f"{running.gateway_url}/api/v1/auth/register",
        json={
            "handle": handle,
            "email": f"{handle}@example.org",
            "password": "a long password",
            "display_name": handle.title(),
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    account: dict[str, Any] = response.json()
    return account


def test_a_genuine_token_passes_so_the_refusals_below_mean_something(
    platform: Platform,  # noqa: F811
) -> None:
    sub = register(platform, "genuine")["user"]["id"]
    token = eddsa(keys_of(platform).current, claims(sub=sub, admin=False))
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{platform.gateway_url}/api/v1/posts", headers=headers).status_code == 200
    assert httpx.get(f"{platform.url('posts')}/posts", headers=headers).status_code == 200
    assert httpx.get(f"{platform.gateway_url}/api/v1/users/me", headers=headers).status_code == 200


@pytest.mark.parametrize("name", list(FORGED))
def test_a_forged_token_is_401_at_the_gateway_and_at_the_service(
    platform: Platform,  # noqa: F811
    name: str,
) -> None:
    headers = {"Authorization": f"Bearer {FORGED[name](platform)}"}
    through_gateway = httpx.get(f"{platform.gateway_url}/api/v1/posts", headers=headers)
    assert_refused(through_gateway)
    # Straight at the service's port, past the gateway: it verifies for itself.
    for service, path in (("posts", "/posts"), ("identity", "/users/me")):
        direct = httpx.get(f"{platform.url(service)}{path}", headers=headers)
        assert_refused(direct, challenge=False)


def jwks_fetches(running: Platform) -> int:
    log = (running.var_dir / "logs" / "identity.log").read_text(errors="replace")
    return log.count("/.well-known/jwks.json")


def test_a_flood_of_unknown_kids_fetches_identitys_keys_at_most_once(
    platform: Platform,  # noqa: F811
) -> None:
    before = jwks_fetches(platform)
    with httpx.Client(base_url=platform.gateway_url) as client:
        for index in range(40):
            token = eddsa(Ed25519PrivateKey.generate(), claims(), kid=f"forged-{index}")
            response = client.get("/api/v1/posts", headers={"Authorization": f"Bearer {token}"})
            assert_refused(response)
    time.sleep(0.5)  # let the access log reach the file
    assert jwks_fetches(platform) - before <= 1


def test_after_a_rotation_the_next_key_verifies_at_once_and_old_tokens_stay_valid(
    platform: Platform,  # noqa: F811
) -> None:
    account = register(platform, "rotator")
    old_token = account["access_token"]
    key_files = KeyFiles(platform.var_dir / "identity" / "jwt-ed25519.pem")
    before = key_files.load()
    assert {before.current_kid, before.next_kid} <= {
        jwk["kid"] for jwk in httpx.get(f"{platform.gateway_url}/api/v1/auth/jwks").json()["keys"]
    }
    # Warm every verifier so that nothing below is explained by a first fetch.
    for url in (f"{platform.gateway_url}/api/v1/posts", f"{platform.url('posts')}/posts"):
        assert httpx.get(url, headers={"Authorization": f"Bearer {old_token}"}).status_code == 200
    fetches = jwks_fetches(platform)

    rotated = key_files.rotate(min_interval_seconds=0)
    assert rotated.current_kid == before.next_kid
    # Signed with the promoted key right after rotation: verifies without asking identity.
    sub = account["user"]["id"]
    fresh = eddsa(rotated.current, claims(sub=sub, admin=False))
    for token in (fresh, old_token):
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{platform.gateway_url}/api/v1/posts", headers=headers).status_code == 200
        assert httpx.get(f"{platform.url('posts')}/posts", headers=headers).status_code == 200
    time.sleep(0.5)
    assert jwks_fetches(platform) == fetches

    # Identity itself signs with the new key within a second or two; its tokens work everywhere.
    deadline = time.monotonic() + 10
    while True:
        login = httpx.post(
            f"{platform.gateway_url}/api/v1/auth/login",
            json={"login": "rotator", "password": "a long password"},
        )
        assert login.status_code == 200, login.text
        new_token = login.json()["access_token"]
        if jwt.get_unverified_header(new_token)["kid"] == rotated.current_kid:
            break
        assert time.monotonic() < deadline, "identity kept signing with the old key"
        time.sleep(0.2)
    me = httpx.get(
        f"{platform.gateway_url}/api/v1/users/me",
        headers={"Authorization": f"Bearer {new_token}"},
    )
    assert me.status_code == 200 and me.json()["handle"] == "rotator"
    published = {
        jwk["kid"] for jwk in httpx.get(f"{platform.gateway_url}/api/v1/auth/jwks").json()["keys"]
    }
    assert published == {before.current_kid, rotated.current_kid, rotated.next_kid}
