"""Access tokens: identity signs EdDSA (Ed25519) JWTs; every service verifies them itself.

Tokens are RFC 9068 access tokens: the header says `typ: at+jwt`, and verification
refuses any other type, so no other JWT signed by the same key passes for one.
Verification pins the algorithm, requires `exp`, `iat`, `sub`, checks issuer and
audience, and refuses a token meant to live longer than the configured maximum.

Keys rotate without logging anybody out. Identity publishes its current key, the next
one (so every verifier holds it before it signs anything) and, after a rotation, the
previous one (its tokens live until they expire). A verifier refetches the JWKS when
an unknown `kid` appears, at most once per interval, so forged kids cannot make it
hammer identity.
"""

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from jwt.algorithms import OKPAlgorithm

from shared.errors import Unauthorized, Unavailable
from shared.ids import new_id
from shared.keyfiles import write_atomically
from shared.revocation import Revocations
from shared.settings import Settings

log = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
TOKEN_TYPE = "at+jwt"
# RFC 9068 §4: "at+jwt", or its media type spelling; media types compare case-insensitively.
ACCEPTED_TYPES = frozenset({TOKEN_TYPE, f"application/{TOKEN_TYPE}"})
# After a failed JWKS fetch, try again at most this often (identity may be back).
RETRY_AFTER_FAILURE_SECONDS = 1.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: the verified claims of an access token.

    `role` is the organisation role (admin, member, analyst; `is_admin` is kept in step with
    it); `session_id` names the sign-in (refresh-token family) the token belongs to, so one
    session can be revoked; `issued_at` (epoch seconds, to the millisecond) lets a revocation
    refuse every token issued at or before it, and not a sign-in a moment after it.
    """

    user_id: UUID
    handle: str
    is_admin: bool = False
    role: str = "member"
    session_id: UUID | None = None
    issued_at: float = 0.0


def _write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write a PEM key atomically (0600), so a reader sees the old file or the new one."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomically(path, pem, mode=0o600)


def _read_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def load_or_create_private_key(path: Path) -> Ed25519PrivateKey:
    """Identity's signing key, created on first start and kept on disk (0600)."""
    if path.exists():
        return _read_private_key(path)
    key = Ed25519PrivateKey.generate()
    _write_private_key(path, key)
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()[:16]


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(public_key))
    jwk.update({"kid": key_id(public_key), "use": "sig", "alg": ALGORITHM})
    return jwk


@dataclass(frozen=True)
class SigningKeys:
    """The current key signs; the next is published ahead; the previous only verifies."""

    current: Ed25519PrivateKey
    next: Ed25519PrivateKey | None = None
    previous: Ed25519PublicKey | None = None

    @property
    def current_kid(self) -> str:
        return key_id(self.current.public_key())

    @property
    def next_kid(self) -> str | None:
        return key_id(self.next.public_key()) if self.next else None

    def jwks(self) -> dict[str, Any]:
        """Current, next and previous public keys (never a private part)."""
        public = [self.current.public_key()]
        if self.next is not None:
            public.append(self.next.public_key())
        if self.previous is not None:
            public.append(self.previous)
        keys = {key_id(key): public_jwk(key) for key in public}
        return {"keys": list(keys.values())}


class KeyFiles:
    """Identity's keys on disk: `<key>.pem` (current), `<key>.next.pem`, `<key>.previous.pub.pem`.

    Every file is replaced atomically, so identity replicas sharing the directory and a
    rotation by `knowflow-admin rotate-signing-key` never see a torn key. The previous
    key is kept as a public key only: it never signs again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.next_path = path.with_name(f"{path.stem}.next{path.suffix}")
        self.previous_path = path.with_name(f"{path.stem}.previous.pub{path.suffix}")

    def load_or_create(self) -> SigningKeys:
        """The keys, creating the current and the next key when missing (first start)."""
        load_or_create_private_key(self.path)
        if not self.next_path.exists():
            _write_private_key(self.next_path, Ed25519PrivateKey.generate())
        return self.load()

    def load(self) -> SigningKeys:
        current = _read_private_key(self.path)
        # Between two steps of a rotation the next key may be missing for a moment.
        next_key = _read_private_key(self.next_path) if self.next_path.exists() else None
        previous = None
        if self.previous_path.exists():
            loaded = serialization.load_pem_public_key(self.previous_path.read_bytes())
            if not isinstance(loaded, Ed25519PublicKey):
                raise ValueError(f"{self.previous_path} is not an Ed25519 public key")
            previous = loaded
        return SigningKeys(current=current, next=next_key, previous=previous)

    def stamp(self) -> tuple[tuple[int, int] | None, ...]:
        """What changes when any key file changes (cheap: three stat calls)."""
        stamps: list[tuple[int, int] | None] = []
        for path in (self.path, self.next_path, self.previous_path):
            try:
                info = path.stat()
            except FileNotFoundError:
                stamps.append(None)
                continue
            stamps.append((info.st_mtime_ns, info.st_size))
        return tuple(stamps)

    def seconds_since_rotation(self) -> float | None:
        try:
            return time.time() - self.previous_path.stat().st_mtime
        except FileNotFoundError:
            return None

    def rotate(self, *, min_interval_seconds: float) -> SigningKeys:
        """Promote next to current, keep the old current as previous, make a new next.

        A second rotation drops the previous key, so it is refused until the previous
        key's tokens have all expired (`min_interval_seconds`), unless that is 0 (an
        emergency rotation that means to log everybody out).
        """
        keys = self.load_or_create()
        since = self.seconds_since_rotation()
        if min_interval_seconds > 0 and since is not None and since < min_interval_seconds:
            raise ValueError(
                f"the keys were rotated {since:.0f} s ago; tokens signed by the previous key "
                f"may live for {min_interval_seconds - since:.0f} s more"
            )
        assert keys.next is not None
        # Order matters: publish the outgoing key as previous before it stops being current.
        previous_pem = keys.current.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        write_atomically(self.previous_path, previous_pem, mode=0o644)
        os.replace(self.next_path, self.path)
        _write_private_key(self.next_path, Ed25519PrivateKey.generate())
        return self.load()


class TokenIssuer:
    """Signs access tokens; only identity holds one (and ops tooling, from the key file)."""

    def __init__(
        self,
        keys: Ed25519PrivateKey | SigningKeys | KeyFiles,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self._files: KeyFiles | None = None
        self._stamp: tuple[tuple[int, int] | None, ...] = ()
        self._checked = time.monotonic()
        if isinstance(keys, KeyFiles):
            self._files = keys
            keys = keys.load_or_create()
            self._stamp = self._files.stamp()
        elif isinstance(keys, Ed25519PrivateKey):
            keys = SigningKeys(current=keys)
        self._keys = keys

    @property
    def keys(self) -> SigningKeys:
        """The keys in force; a rotation on disk is picked up within a second."""
        if self._files is not None and time.monotonic() - self._checked >= 1.0:
            self._checked = time.monotonic()
            if self._files.stamp() != self._stamp:
                self.reload()
        return self._keys

    def reload(self) -> None:
        """Read the key files again (after a rotation)."""
        if self._files is None:
            return
        self._stamp = self._files.stamp()
        self._keys = self._files.load()
        log.info(
            "signing keys loaded: current %s, next %s", self._keys.current_kid, self._keys.next_kid
        )

    @property
    def kid(self) -> str:
        return self.keys.current_kid

    def jwks(self) -> dict[str, Any]:
        return self.keys.jwks()

    def issue(
        self,
        *,
        user_id: UUID,
        handle: str,
        is_admin: bool = False,
        role: str | None = None,
        session_id: UUID | None = None,
    ) -> str:
        keys = self.keys
        moment = time.time()
        now = int(moment)
        role = role or ("admin" if is_admin else "member")
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "handle": handle,
            "admin": role == "admin",
            "role": role,
            # Milliseconds (RFC 7519 allows a fractional NumericDate), rounded down: a revocation
            # refuses tokens issued at or before its instant, and a sign-in in the same second
            # but after it must pass.
            "iat": math.floor(moment * 1000) / 1000,
            "nbf": now,
            "exp": now + self.ttl_seconds,
            "jti": str(new_id()),
        }
        if session_id is not None:
            claims["sid"] = str(session_id)
        headers = {"kid": keys.current_kid, "typ": TOKEN_TYPE}
        return jwt.encode(claims, keys.current, algorithm=ALGORITHM, headers=headers)


class TokenVerifier:
    """Verifies access tokens against a JWKS, caching what it has verified until expiry.

    Every answer, cached or not, is checked against `revocations` (fed from the bus by
    `shared.revocation.RevocationFeed`), so a cached verdict never outlives a revocation.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        jwks: dict[str, Any] | None = None,
        jwks_source: Callable[[], dict[str, Any]] | None = None,
        max_lifetime_seconds: int = 3600,
        leeway_seconds: int = 30,
        refetch_seconds: float = 10.0,
        cache_size: int = 10_000,
        revocations: Revocations | None = None,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self.jwks_source = jwks_source
        self.max_lifetime_seconds = max_lifetime_seconds
        self.leeway_seconds = leeway_seconds
        self.refetch_seconds = refetch_seconds
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._last_attempt = float("-inf")
        self._failure: Exception | None = None
        # Verifying Ed25519 costs ~50 µs; a hot token is checked once per process.
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._cache_size = cache_size
        # Empty until a feed follows the bus; kept as long as a revoked token can live.
        self.revocations = revocations or Revocations(
            keep_seconds=max_lifetime_seconds + leeway_seconds
        )
        if jwks is not None:
            self._install(jwks)

    @classmethod
    def for_settings(cls, settings: Settings) -> "TokenVerifier":
        """A verifier fetching identity's JWKS, with the lifetime and refetch limits set."""
        return cls(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            jwks_url=settings.resolved_jwks_url,
            max_lifetime_seconds=settings.access_token_max_lifetime_seconds,
            leeway_seconds=settings.jwt_leeway_seconds,
            refetch_seconds=settings.jwks_refetch_seconds,
        )

    def _install(self, jwks: dict[str, Any]) -> None:
        keys = {}
        for jwk in jwks.get("keys", []):
            if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
                keys[jwk["kid"]] = OKPAlgorithm.from_jwk(json.dumps(jwk))
        self._keys = keys

    def _fetch(self) -> dict[str, Any]:
        if self.jwks_source is not None:
            return self.jwks_source()
        assert self.jwks_url
        response = httpx.get(self.jwks_url, timeout=5.0)
        response.raise_for_status()
        jwks: dict[str, Any] = response.json()
        return jwks

    def refresh(self, *, force: bool = False) -> None:
        """Fetch the JWKS, at most once per `refetch_seconds` (after a failure, once a second).

        Within the interval nothing is fetched: if the last fetch failed, the keys are
        still unavailable (503); otherwise the keys held are the newest known.
        """
        if not self.jwks_url and self.jwks_source is None:
            return
        with self._lock:
            now = time.monotonic()
            interval = self.refetch_seconds
            if self._failure is not None:
                interval = min(interval, RETRY_AFTER_FAILURE_SECONDS)
            if not force and now - self._last_attempt < interval:
                if self._failure is not None:
                    raise Unavailable("signing keys are unavailable; try again shortly")
                return
            self._last_attempt = now
            try:
                jwks = self._fetch()
                self._install(jwks)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                self._failure = exc
                # Not the token's fault: a 401 would make clients drop good tokens.
                raise Unavailable("signing keys are unavailable; try again shortly") from exc
            self._failure = None

    def _key_for(self, kid: str) -> Any:
        if kid not in self._keys:
            self.refresh()
        try:
            return self._keys[kid]
        except KeyError:
            raise Unauthorized("token signed by an unknown key") from None

    def revoked(self, principal: Principal) -> bool:
        """Whether a revocation in force names this principal's token."""
        return self.revocations.refuses(
            user_id=principal.user_id,
            session_id=principal.session_id,
            issued_at=principal.issued_at,
        )

    def cached(self, token: str) -> Principal | None:
        """The principal of a token already verified, not expired and not revoked (no I/O)."""
        entry = self._cache.get(token)
        if entry is not None and entry[0] > time.time() and not self.revoked(entry[1]):
            return entry[1]
        return None

    def verify(self, token: str) -> Principal:
        if (principal := self.cached(token)) is not None:
            return principal
        if (entry := self._cache.get(token)) is not None and self.revoked(entry[1]):
            raise Unauthorized("token revoked")
        try:
            header = jwt.get_unverified_header(token)
            if str(header.get("typ", "")).lower() not in ACCEPTED_TYPES:
                raise Unauthorized(f"invalid token: typ must be {TOKEN_TYPE}")
            claims = jwt.decode(
                token,
                key=self._key_for(str(header.get("kid", ""))),
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
            if int(claims["exp"]) - int(claims["iat"]) > self.max_lifetime_seconds:
                raise Unauthorized(f"invalid token: lifetime exceeds {self.max_lifetime_seconds} s")
            is_admin = bool(claims.get("admin", False))
            role = str(claims.get("role") or ("admin" if is_admin else "member"))
            principal = Principal(
                user_id=UUID(claims["sub"]),
                handle=str(claims.get("handle", "")),
                is_admin=role == "admin",
                role=role,
                session_id=UUID(claims["sid"]) if claims.get("sid") else None,
                issued_at=float(claims["iat"]),
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
        except ValueError as exc:
            raise Unauthorized("invalid token subject") from exc
        if self.revoked(principal):
            raise Unauthorized("token revoked")
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


async def get_principal(request: Request) -> Principal:
    """The caller. A token already verified is answered on the event loop (a dict hit, no
    thread hop); a new one is verified in a thread, since that may fetch the JWKS."""
    verifier: TokenVerifier = request.app.state.verifier
    token = bearer_token(request.headers.get("authorization"))
    if (principal := verifier.cached(token)) is not None:
        return principal
    return await run_in_threadpool(verifier.verify, token)


CurrentUser = Annotated[Principal, Depends(get_principal)]
