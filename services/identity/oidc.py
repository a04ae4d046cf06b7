"""Single sign-on with OpenID Connect: the relying party's side of the code flow with PKCE.

One sign-in, in two requests:
1. `begin`: an authorization URL for the provider (from its discovery document) with a
   fresh state, nonce and PKCE verifier (Authlib), and a signed, short-lived cookie that
   holds them, so only the browser that started the sign-in can finish it.
2. `finish`: the callback's state must match the cookie's; the code is exchanged (with the
   verifier and the client's secret) at the token endpoint, and the ID token is verified
   (PyJWT): signature by a key in the provider's JWKS, issuer, audience, expiry, nonce.

A sign-in may carry `return_to`, a same-origin path (checked by `check_return_to`) kept
inside the signed cookie, so nobody can change it on the way: the callback then sends the
browser back there with a one-time hand-off code (`with_query`), not tokens.

`sign_in` then applies Knowflow's rules to the verified claims: a linked identity
(issuer + subject) signs in its account; otherwise an e-mail the provider vouches for
(`email_verified`) links an existing account or creates one just in time. Mapped groups
follow the groups claim.

Errors: `Unavailable` (the provider cannot be reached or answers nonsense), `BadRequest`
(the callback does not belong to a sign-in this browser started), `Unauthorized` (the
provider's answer does not verify), `Forbidden` (a verified person Knowflow will not sign in).
"""

import hmac
import re
import secrets
import threading
import time
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx
import jwt
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlmodel import Session, col, select

from services.identity import service
from services.identity.audit import Origin, record_audit
from services.identity.models import ExternalIdentity, Group, User
from shared.errors import BadRequest, Forbidden, NotFound, Unauthorized, Unavailable
from shared.ids import utcnow
from shared.keyfiles import load_or_create_key
from shared.settings import OidcProvider, Settings

STATE_COOKIE = "knowflow_oidc"
STATE_SALT = "knowflow.identity.oidc-state"
CALLBACK_PATH = "/api/v1/auth/oidc/{name}/callback"
# Discovery documents and JWKS are fetched again after this (key rotation at the provider).
METADATA_TTL_SECONDS = 3600.0
# ID tokens signed with a shared secret (HS*) or unsigned are refused: only the provider's keys.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
HANDLE_CHARS = re.compile(r"[^a-z0-9_]+")
RETURN_TO_MAX_LENGTH = 2000
# What the callback adds to `return_to`; any already there are dropped (they are ours).
HANDOFF_PARAMETERS = ("sso_code", "sso_error")


@dataclass(frozen=True)
class ProviderMetadata:
    """What discovery tells about a provider (OpenID Connect Discovery 1.0)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: list[str]


@dataclass(frozen=True)
class PendingSignIn:
    """What the state cookie carries between the redirect and the callback."""

    provider: str
    state: str
    nonce: str
    code_verifier: str
    return_to: str | None = None  # where the web app wants the browser back (a local path)


class OidcClient:
    """One configured provider: discovery and JWKS (cached), the code exchange, ID tokens."""

    def __init__(self, config: OidcProvider, *, timeout: float, leeway: int) -> None:
        self.config = config
        self.timeout = timeout
        self.leeway = leeway
        self._lock = threading.Lock()
        self._metadata: ProviderMetadata | None = None
        self._fetched_at = 0.0
        self._jwks: jwt.PyJWKClient | None = None

    def metadata(self) -> ProviderMetadata:
        """The discovery document, fetched at most once an hour."""
        with self._lock:
            if self._metadata is None or time.monotonic() - self._fetched_at > METADATA_TTL_SECONDS:
                self._metadata = self._discover()
                self._fetched_at = time.monotonic()
                self._jwks = jwt.PyJWKClient(
                    self._metadata.jwks_uri, cache_keys=True, timeout=int(self.timeout)
                )
            return self._metadata

    def _discover(self) -> ProviderMetadata:
        url = f"{self.config.issuer.rstrip('/')}/.well-known/openid-configuration"
        try:
            response = httpx.get(url, timeout=self.timeout)
            response.raise_for_status()
            document = response.json()
            metadata = ProviderMetadata(
                issuer=str(document["issuer"]),
                authorization_endpoint=str(document["authorization_endpoint"]),
                token_endpoint=str(document["token_endpoint"]),
                jwks_uri=str(document["jwks_uri"]),
                algorithms=[
                    str(alg)
                    for alg in document.get("id_token_signing_alg_values_supported", ["RS256"])
                ],
            )
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise Unavailable(
                f"the identity provider {self.config.name!r} cannot be reached"
            ) from exc
        # Discovery 1.0 section 4.3: the document must name the issuer it was fetched for.
        if metadata.issuer != self.config.issuer:
            raise Unavailable(f"the identity provider {self.config.name!r} names another issuer")
        return metadata

    def authorization_url(self, pending: PendingSignIn, *, redirect_uri: str) -> str:
        metadata = self.metadata()
        uri: str = prepare_grant_uri(
            metadata.authorization_endpoint,
            client_id=self.config.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=" ".join(self.config.scopes),
            state=pending.state,
            nonce=pending.nonce,
            code_challenge=create_s256_code_challenge(pending.code_verifier),
            code_challenge_method="S256",
        )
        return uri

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> str:
        """The ID token the token endpoint gives for this code (RFC 6749 4.1.3, RFC 7636)."""
        metadata = self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
            "client_id": self.config.client_id,
        }
        auth = (
            httpx.BasicAuth(self.config.client_id, self.config.client_secret)
            if self.config.client_secret
            else None
        )
        try:
            response = httpx.post(
                metadata.token_endpoint, data=form, auth=auth, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"the identity provider {self.config.name!r} cannot be reached"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error", "") if isinstance(body, dict) else ""
            raise Unauthorized(f"the identity provider refused the sign-in code ({error})".strip())
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise Unauthorized("the identity provider returned no ID token")
        return id_token

    def check_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        """The ID token's claims if the provider signed it for us and this sign-in (OIDC 3.1.3.7)."""
        metadata = self.metadata()
        algorithms = [alg for alg in metadata.algorithms if alg in ASYMMETRIC_ALGORITHMS]
        assert self._jwks is not None
        try:
            key = self._jwks.get_signing_key_from_jwt(id_token)
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=algorithms,
                audience=self.config.client_id,
                issuer=metadata.issuer,
                leeway=self.leeway,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise Unavailable(
                f"the identity provider {self.config.name!r} cannot be reached"
            ) from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the ID token is not valid: {exc}") from exc
        # Several audiences: we must be the authorized party (OIDC Core 3.1.3.7, items 4-5).
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.config.client_id:
            raise Unauthorized("the ID token is not valid: issued to another party")
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise Unauthorized("the ID token is not valid: it belongs to another sign-in (nonce)")
        return claims


class OidcProviders:
    """The configured providers by name, each with its client (made once per process)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clients = {
            config.name: OidcClient(
                config,
                timeout=settings.oidc_http_timeout_seconds,
                leeway=settings.jwt_leeway_seconds,
            )
            for config in settings.oidc_providers
        }

    def check(self, name: str) -> OidcClient:
        client = self.clients.get(name)
        if client is None:
            raise NotFound(f"no identity provider {name!r}")
        return client

    def redirect_uri(self, name: str) -> str:
        """The callback as people reach it (through the gateway); registered at the provider."""
        return self.settings.public_url.rstrip("/") + CALLBACK_PATH.format(name=name)


@lru_cache(maxsize=8)
def _serializer_for(path: Path) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(load_or_create_key(path), salt=STATE_SALT)


def _unsafe_path(path: str) -> str | None:
    """Why `path` could lead the browser off this origin, if it could."""
    if not path.startswith("/"):
        return "must be a path on this site, starting with /"
    # `//host` and `/\host` are other hosts to browsers, which also read \ as /.
    if path.startswith("//") or "\\" in path:
        return "must not start with // nor contain a backslash"
    # Browsers drop tabs and newlines from URLs (`/\t/host` is `//host`); no control at all.
    if any(unicodedata.category(char) == "Cc" for char in path):
        return "must not contain control characters"
    return None


def check_return_to(value: str) -> str:
    """`value` if it is a path on this site (the open-redirect rules); else a 400."""
    if len(value) > RETURN_TO_MAX_LENGTH:
        raise BadRequest(f"return_to is longer than {RETURN_TO_MAX_LENGTH} characters")
    # Decoded once too: whoever reads the path next may decode it (`/%2F%2Fhost`).
    reason = _unsafe_path(value) or _unsafe_path(unquote(value))
    if reason is not None:
        raise BadRequest(f"return_to {reason}")
    return value


def with_query(return_to: str, name: str, value: str) -> str:
    """`return_to` with `name=value` added to its query (before any fragment)."""
    # Non-ASCII and spaces percent-encoded: a Location header is ASCII.
    path = quote(return_to, safe="/?#&=;:@!$'()*+,~%[]-._")
    parts = urlsplit(path)
    kept = [
        pair
        for pair in parts.query.split("&")
        if pair and pair.partition("=")[0] not in HANDOFF_PARAMETERS
    ]
    query = "&".join([*kept, f"{name}={quote(value, safe='')}"])
    return urlunsplit(("", "", parts.path, query, parts.fragment))


def begin(providers: OidcProviders, name: str, *, return_to: str | None = None) -> tuple[str, str]:
    """Where to send the browser, and the signed state cookie's value (`return_to` inside)."""
    client = providers.check(name)
    pending = PendingSignIn(
        provider=name,
        state=generate_token(32),
        nonce=generate_token(32),
        # RFC 7636 4.1: 43 to 128 characters from the unreserved set.
        code_verifier=generate_token(64),
        return_to=None if return_to is None else check_return_to(return_to),
    )
    url = client.authorization_url(pending, redirect_uri=providers.redirect_uri(name))
    cookie = _serializer_for(providers.settings.oidc_state_key_file).dumps(
        [pending.provider, pending.state, pending.nonce, pending.code_verifier, pending.return_to]
    )
    return url, str(cookie)


def check_pending(
    settings: Settings, *, name: str, cookie: str | None, state: str | None
) -> PendingSignIn:
    """The sign-in this browser started, if the callback's state is that sign-in's."""
    refused = BadRequest("this sign-in was not started here, has expired or was tampered with")
    if not cookie or not state:
        raise refused
    try:
        provider, expected, nonce, verifier, return_to = _serializer_for(
            settings.oidc_state_key_file
        ).loads(cookie, max_age=settings.oidc_state_ttl_seconds)
    except (BadSignature, SignatureExpired, ValueError, TypeError) as exc:
        raise refused from exc
    if provider != name or not hmac.compare_digest(str(expected), state):
        raise refused
    return PendingSignIn(
        provider=provider,
        state=expected,
        nonce=nonce,
        code_verifier=verifier,
        return_to=None if return_to is None else str(return_to),
    )


def finish(providers: OidcProviders, pending: PendingSignIn, *, code: str | None) -> dict[str, Any]:
    """The verified ID token claims for the code the provider sent back."""
    if not code:
        raise BadRequest("the identity provider sent no code")
    client = providers.check(pending.provider)
    id_token = client.exchange_code(
        code=code,
        code_verifier=pending.code_verifier,
        redirect_uri=providers.redirect_uri(pending.provider),
    )
    return client.check_id_token(id_token, nonce=pending.nonce)


def sign_in(
    *, session: Session, config: OidcProvider, claims: dict[str, Any], origin: Origin
) -> User:
    """The account these verified claims sign in: linked, linked now by e-mail, or new."""
    issuer, subject = str(claims["iss"]), str(claims["sub"])
    link = session.exec(
        select(ExternalIdentity).where(
            ExternalIdentity.issuer == issuer, ExternalIdentity.subject == subject
        )
    ).first()
    if link is not None:
        user = service.check_user(session=session, user_id=link.user_id)
    else:
        user = _link_or_create(session=session, config=config, claims=claims, origin=origin)
        link = ExternalIdentity(
            user_id=user.id, provider=config.name, issuer=issuer, subject=subject
        )
    if not user.active:
        raise Forbidden("this account is deactivated")
    link.last_sign_in_at = utcnow()
    session.add(link)
    session.flush()
    _sync_groups(session=session, config=config, user=user, claims=claims, origin=origin)
    record_audit(
        session,
        action="sso.sign_in",
        target=f"user:{user.id}",
        actor_id=user.id,
        origin=origin,
        details={"provider": config.name, "issuer": issuer, "subject": subject},
    )
    return user


def _link_or_create(
    *, session: Session, config: OidcProvider, claims: dict[str, Any], origin: Origin
) -> User:
    email = claims.get("email")
    # Only an address the provider vouches for: anyone can type someone else's into a profile.
    if not isinstance(email, str) or not email or claims.get("email_verified") is not True:
        raise Forbidden(
            "the identity provider did not confirm this person's e-mail address "
            "(email_verified), so no Knowflow account can be linked or created"
        )
    email = email.strip().lower()
    details = {"provider": config.name, "issuer": str(claims["iss"]), "subject": str(claims["sub"])}
    user = session.exec(select(User).where(User.email == email)).first()
    if user is not None:
        record_audit(
            session,
            action="sso.linked",
            target=f"user:{user.id}",
            actor_id=user.id,
            origin=origin,
            details=details,
        )
        return user
    user = service.do_create_account(
        session=session,
        handle=_free_handle(session=session, claims=claims, email=email),
        email=email,
        password_hash="",  # signs in through the provider only
        display_name=str(claims.get("name") or "").strip()[:100] or email.split("@")[0],
        role="member",
    )
    record_audit(
        session,
        action="sso.account_created",
        target=f"user:{user.id}",
        actor_id=user.id,
        origin=origin,
        details=details,
    )
    return user


def _free_handle(*, session: Session, claims: dict[str, Any], email: str) -> str:
    """A handle from the preferred username or the e-mail's local part that nobody has."""
    wanted = str(claims.get("preferred_username") or email.split("@")[0]).lower()
    base = HANDLE_CHARS.sub("_", wanted).strip("_")[:26] or "user"
    base = base if len(base) >= 2 else f"{base}_"
    candidate = base
    while session.exec(select(User.id).where(User.handle == candidate)).first() is not None:
        candidate = f"{base}_{secrets.randbelow(100_000)}"
    return candidate


def _claim_values(claims: dict[str, Any], name: str) -> set[str]:
    value = claims.get(name)
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {str(item) for item in value}
    return set()


def _mapped_group(*, session: Session, slug: str) -> Group | None:
    """The group a mapping names: the open group with that slug, else the only one."""
    groups = session.exec(select(Group).where(Group.slug == slug).order_by(col(Group.id))).all()
    open_groups = [group for group in groups if group.visibility == "open"]
    if open_groups:
        return open_groups[0]
    return groups[0] if len(groups) == 1 else None


def _sync_groups(
    *, session: Session, config: OidcProvider, user: User, claims: dict[str, Any], origin: Origin
) -> None:
    """Join the mapped groups the claim names and leave the mapped ones it no longer names."""
    if not config.group_map:
        return
    values = _claim_values(claims, config.groups_claim)
    wanted: dict[str, bool] = {}
    for value, slug in config.group_map.items():
        wanted[slug] = wanted.get(slug, False) or value in values
    for slug, member in sorted(wanted.items()):
        group = _mapped_group(session=session, slug=slug)
        if group is None:
            continue
        if member:
            changed = service.do_grant_membership(session=session, group=group, user_id=user.id)
            action = "sso.group_joined"
        else:
            changed = service.do_revoke_membership(session=session, group=group, user_id=user.id)
            action = "sso.group_left"
        if changed:
            record_audit(
                session,
                action=action,
                target=f"group:{group.id}",
                actor_id=user.id,
                origin=origin,
                details={"provider": config.name, "user_id": str(user.id), "slug": slug},
            )
