"""Access tokens: identity signs EdDSA (Ed25519) JWTs; every service verifies them itself.

Verification pins the algorithm, requires `exp`, `iat`, `sub`, and checks issuer and
audience. Keys come from identity's JWKS, fetched once and again when an unknown
`kid` appears (key rotation).
"""

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, Request
from jwt.algorithms import OKPAlgorithm

from shared.errors import Unauthorized, Unavailable
from shared.ids import new_id

ALGORITHM = "EdDSA"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the verified claims of an access token."""

    user_id: UUID
    handle: str
    is_admin: bool = False


def load_or_create_private_key(path: Path) -> Ed25519PrivateKey:
    """Identity's signing key, created on first start and kept on disk (0600)."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.touch(mode=0o600)
    path.write_bytes(pem)
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()[:16]


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(public_key))
    jwk.update({"kid": key_id(public_key), "use": "sig", "alg": ALGORITHM})
    return jwk


class TokenIssuer:
    """Signs access tokens; only identity holds one."""

    def __init__(
        self, private_key: Ed25519PrivateKey, *, issuer: str, audience: str, ttl_seconds: int
    ) -> None:
        self.private_key = private_key
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self.kid = key_id(private_key.public_key())
        self.public_keys = {"keys": [public_jwk(private_key.public_key())]}

    def jwks(self) -> dict[str, Any]:
        return self.public_keys

    def issue(self, *, user_id: UUID, handle: str, is_admin: bool = False) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "handle": handle,
            "admin": is_admin,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_seconds,
            "jti": str(new_id()),
        }
        return jwt.encode(claims, self.private_key, algorithm=ALGORITHM, headers={"kid": self.kid})


class TokenVerifier:
    """Verifies access tokens against a JWKS, caching what it has verified until expiry."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        jwks: dict[str, Any] | None = None,
        cache_size: int = 10_000,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._last_fetch = 0.0
        # Verifying Ed25519 costs ~50 µs; a hot token is checked once per process.
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._cache_size = cache_size
        if jwks is not None:
            self._install(jwks)

    def _install(self, jwks: dict[str, Any]) -> None:
        keys = {}
        for jwk in jwks.get("keys", []):
            if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
                keys[jwk["kid"]] = OKPAlgorithm.from_jwk(json.dumps(jwk))
        self._keys = keys

    def refresh(self, *, force: bool = False) -> None:
        """Fetch the JWKS (at most every 10 s unless forced)."""
        if not self.jwks_url:
            return
        with self._lock:
            if not force and time.monotonic() - self._last_fetch < 10:
                return
            response = httpx.get(self.jwks_url, timeout=5.0)
            response.raise_for_status()
            self._install(response.json())
            # Throttle only after a success, so a failed fetch is retried at once.
            self._last_fetch = time.monotonic()

    def _key_for(self, kid: str) -> Any:
        if kid not in self._keys:
            try:
                self.refresh()
            except httpx.HTTPError as exc:
                # Not the token's fault: a 401 would make clients drop good tokens.
                raise Unavailable("signing keys are unavailable; try again shortly") from exc
        try:
            return self._keys[kid]
        except KeyError:
            raise Unauthorized("token signed by an unknown key") from None

    def cached(self, token: str) -> Principal | None:
        """The principal of a token already verified and not yet expired (no I/O, no crypto)."""
        entry = self._cache.get(token)
        if entry is not None and entry[0] > time.time():
            return entry[1]
        return None

    def verify(self, token: str) -> Principal:
        if (principal := self.cached(token)) is not None:
            return principal
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                key=self._key_for(str(header.get("kid", ""))),
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
            principal = Principal(
                user_id=UUID(claims["sub"]),
                handle=str(claims.get("handle", "")),
                is_admin=bool(claims.get("admin", False)),
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
        except ValueError as exc:
            raise Unauthorized("invalid token subject") from exc
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[token] = (float(claims["exp"]), principal)
        return principal


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("authorization must be 'Bearer <token>'")
    return token.strip()


def get_principal(request: Request) -> Principal:
    verifier: TokenVerifier = request.app.state.verifier
    return verifier.verify(bearer_token(request.headers.get("authorization")))


CurrentUser = Annotated[Principal, Depends(get_principal)]
