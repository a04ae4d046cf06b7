"""Sessions: sign-in, rotating refresh tokens, logout, password change and reset by e-mail.

A sign-in starts a session (a refresh-token family). Each refresh spends its token and
hands out the next; a spent token presented again means it was copied, so the whole
session is revoked. Every revocation is an `AccessRevoked` naming the session, so verifiers
refuse its access tokens before they expire; refresh itself reads the session row. Refresh
and reset tokens, and single sign-on's hand-off codes, are random, shown once, and stored
as SHA-256 only.

Functions here add rows, outbox events and audit entries to the caller's session and
never commit.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast
from uuid import UUID

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import or_, update
from sqlmodel import Session, SQLModel, col, select

from services.identity.audit import Origin, record_audit
from services.identity.models import AuthSession, PasswordReset, RefreshToken, SsoHandoff, User
from services.identity.policy import check_password
from services.identity.service import password_hasher
from shared.errors import BadRequest, Forbidden
from shared.events.contracts import AccessRevoked, PasswordResetRequested, RevocationReason
from shared.events.outbox import record_event
from shared.ids import utcnow

SOURCE = "/knowflow/identity"
TOKEN_BYTES = 32
# A hand-off code only crosses one redirect: the web app trades it at once.
HANDOFF_TTL_SECONDS = 60
SignInMethod = Literal["password", "registration", "sso"]


def token_hash(token: str) -> str:
    """What is stored of a refresh or reset token: its SHA-256 (it has 256 random bits)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SignIn:
    """A session just started or refreshed, and its refresh token (shown once)."""

    user: User
    session: AuthSession
    refresh_token: str
    refresh_expires_in: int


def _issue_refresh_token(
    session: Session, auth_session: AuthSession, *, ttl_seconds: int, now: datetime
) -> str:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(
        RefreshToken(
            token_hash=token_hash(token),
            session_id=auth_session.id,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
    )
    return token


def do_sign_in(
    *,
    session: Session,
    user: User,
    method: SignInMethod,
    ttl_seconds: int,
    origin: Origin,
) -> SignIn:
    """Start a session for `user` and record the sign-in."""
    now = utcnow()
    auth_session = AuthSession(user_id=user.id, created_at=now)
    session.add(auth_session)
    session.flush()
    token = _issue_refresh_token(session, auth_session, ttl_seconds=ttl_seconds, now=now)
    record_audit(
        session,
        action="auth.signed_in",
        target=f"user:{user.id}",
        actor_id=user.id,
        origin=origin,
        details={"session_id": str(auth_session.id), "method": method},
    )
    return SignIn(user, auth_session, token, ttl_seconds)


def record_failed_sign_in(*, session: Session, login: str, origin: Origin) -> None:
    """Audit a refused sign-in: the account it named, if there is one.

    An unknown name is kept only as a short hash (attempts on one name still group): people
    type their password into the login field, and the audit log must not keep it.
    """
    login = login.strip().lower()
    user = session.exec(
        select(User).where(or_(col(User.handle) == login, col(User.email) == login))
    ).first()
    record_audit(
        session,
        action="auth.sign_in_failed",
        target=f"user:{user.id}" if user else f"login:{token_hash(login)[:16]}",
        actor_id=None,
        origin=origin,
    )


def _revoke(
    session: Session, auth_session: AuthSession, *, reason: RevocationReason, now: datetime
) -> bool:
    """Mark a session revoked and tell every verifier; False if it already was."""
    if auth_session.revoked_at is not None:
        return False
    auth_session.revoked_at = now
    auth_session.revoked_reason = reason
    session.add(auth_session)
    record_event(
        session,
        AccessRevoked(
            user_id=auth_session.user_id, session_id=auth_session.id, not_before=now, reason=reason
        ),
        source=SOURCE,
    )
    return True


def _live_sessions(session: Session, user_id: UUID) -> list[AuthSession]:
    return list(
        session.exec(
            select(AuthSession)
            .where(AuthSession.user_id == user_id, col(AuthSession.revoked_at).is_(None))
            .order_by(col(AuthSession.created_at))
            .with_for_update()
        ).all()
    )


def _spend(
    session: Session, table: type[SQLModel], key: str, value: str, stamp: str, now: datetime
) -> bool:
    """Stamp a single-use row as used if nobody has yet (one UPDATE); whether this call did."""
    result = session.execute(
        update(table)
        .where(getattr(table, key) == value, col(getattr(table, stamp)).is_(None))
        .values({stamp: now})
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _reused(
    session: Session, auth_session: AuthSession, *, origin: Origin, now: datetime
) -> "RefreshOutcome":
    """A spent refresh token came back: it was copied, so its whole session ends."""
    _revoke(session, auth_session, reason="refresh_reuse", now=now)
    record_audit(
        session,
        action="auth.refresh_reused",
        target=f"user:{auth_session.user_id}",
        actor_id=None,
        origin=origin,
        details={"session_id": str(auth_session.id)},
    )
    return RefreshOutcome(refused="refresh token already used; the session is ended")


@dataclass(frozen=True)
class RefreshOutcome:
    """A refresh's result: new tokens, or why it was refused (after recording a theft)."""

    sign_in: SignIn | None = None
    refused: str | None = None


def do_refresh(
    *, session: Session, refresh_token: str, ttl_seconds: int, origin: Origin
) -> RefreshOutcome:
    """Spend a refresh token for the next one; a spent one again revokes its session.

    Refusals are returned, not raised: revoking a session on reuse must commit.
    """
    now = utcnow()
    row = session.exec(
        select(RefreshToken)
        .where(RefreshToken.token_hash == token_hash(refresh_token))
        .with_for_update()
    ).first()
    if row is None:
        return RefreshOutcome(refused="unknown refresh token")
    auth_session = session.exec(
        select(AuthSession).where(AuthSession.id == row.session_id).with_for_update()
    ).one()
    if auth_session.revoked_at is not None:
        return RefreshOutcome(refused="the session has ended; sign in again")
    if row.spent_at is not None:
        return _reused(session, auth_session, origin=origin, now=now)
    if row.expires_at <= now:
        return RefreshOutcome(refused="the refresh token has expired; sign in again")
    user = session.get(User, auth_session.user_id)
    if user is None or not user.active or user.erased_at is not None:
        return RefreshOutcome(refused="the account cannot sign in")
    # Spent only if still unspent: of refreshes racing with one token (the row lock does not
    # hold on SQLite) exactly one gets here first; the others find it spent.
    if not _spend(session, RefreshToken, "token_hash", row.token_hash, "spent_at", now):
        return _reused(session, auth_session, origin=origin, now=now)
    auth_session.refreshed_at = now
    session.add(auth_session)
    token = _issue_refresh_token(session, auth_session, ttl_seconds=ttl_seconds, now=now)
    return RefreshOutcome(sign_in=SignIn(user, auth_session, token, ttl_seconds))


def do_logout(*, session: Session, user_id: UUID, session_id: UUID | None, origin: Origin) -> None:
    """End the caller's session (idempotent: an ended one stays ended, no new event)."""
    if session_id is None:
        raise BadRequest("this token belongs to no session")
    auth_session = session.exec(
        select(AuthSession).where(AuthSession.id == session_id).with_for_update()
    ).first()
    if auth_session is None or auth_session.user_id != user_id:
        raise BadRequest("this token belongs to no session")
    if _revoke(session, auth_session, reason="logout", now=utcnow()):
        record_audit(
            session,
            action="auth.logged_out",
            target=f"user:{user_id}",
            actor_id=user_id,
            origin=origin,
            details={"session_id": str(session_id)},
        )


def _set_password(session: Session, user: User, password: str) -> None:
    user.password_hash = password_hasher.hash(password)
    session.add(user)


def do_change_password(
    *,
    session: Session,
    user_id: UUID,
    session_id: UUID | None,
    current_password: str,
    new_password: str,
    origin: Origin,
) -> int:
    """Change one's password knowing the current one; every other session ends. How many."""
    user = session.get(User, user_id)
    if user is None or not user.password_hash:
        raise Forbidden("this account has no password to change")
    try:
        password_hasher.verify(user.password_hash, current_password)
    except (VerificationError, InvalidHashError):
        raise Forbidden("the current password is wrong") from None
    check_password(new_password, handle=user.handle, email=user.email, field="new_password")
    _set_password(session, user, new_password)
    now = utcnow()
    ended = [
        auth_session
        for auth_session in _live_sessions(session, user.id)
        if auth_session.id != session_id
        and _revoke(session, auth_session, reason="password_changed", now=now)
    ]
    record_audit(
        session,
        action="auth.password_changed",
        target=f"user:{user.id}",
        actor_id=user.id,
        origin=origin,
        details={"sessions_ended": str(len(ended))},
    )
    return len(ended)


def do_request_password_reset(
    *, session: Session, email: str, ttl_seconds: int, origin: Origin
) -> None:
    """E-mail a single-use reset link, if an account that can sign in has this address.

    Says nothing either way: the caller answers 202 whether or not the account exists.
    """
    user = session.exec(select(User).where(User.email == email.strip().lower())).first()
    if user is None or not user.active or user.erased_at is not None or not user.password_hash:
        return
    now = utcnow()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires_at = now + timedelta(seconds=ttl_seconds)
    session.add(
        PasswordReset(
            token_hash=token_hash(token), user_id=user.id, created_at=now, expires_at=expires_at
        )
    )
    # Restricted: the token travels only to the notifier, which e-mails it.
    record_event(
        session,
        PasswordResetRequested(
            user_id=user.id, email=user.email, token=token, expires_at=expires_at
        ),
        source=SOURCE,
    )
    record_audit(
        session,
        action="auth.password_reset_requested",
        target=f"user:{user.id}",
        actor_id=None,
        origin=origin,
    )


def do_confirm_password_reset(
    *, session: Session, token: str, new_password: str, origin: Origin
) -> None:
    """Set a new password with a reset link's token: spent, and every session ends."""
    now = utcnow()
    reset = session.exec(
        select(PasswordReset).where(PasswordReset.token_hash == token_hash(token)).with_for_update()
    ).first()
    if reset is None or reset.used_at is not None or reset.expires_at <= now:
        raise BadRequest("this reset link is not valid (used, expired or unknown)")
    user = session.get(User, reset.user_id)
    if user is None or not user.active or user.erased_at is not None:
        raise BadRequest("this reset link is not valid (used, expired or unknown)")
    check_password(new_password, handle=user.handle, email=user.email, field="new_password")
    if not _spend(session, PasswordReset, "token_hash", reset.token_hash, "used_at", now):
        raise BadRequest("this reset link is not valid (used, expired or unknown)")
    _set_password(session, user, new_password)
    # Any other outstanding link for the account is spent too.
    outstanding = session.exec(
        select(PasswordReset).where(
            PasswordReset.user_id == user.id, col(PasswordReset.used_at).is_(None)
        )
    ).all()
    for row in outstanding:
        row.used_at = now
        session.add(row)
    ended = [
        auth_session
        for auth_session in _live_sessions(session, user.id)
        if _revoke(session, auth_session, reason="password_reset", now=now)
    ]
    record_audit(
        session,
        action="auth.password_reset",
        target=f"user:{user.id}",
        actor_id=user.id,
        origin=origin,
        details={"sessions_ended": str(len(ended))},
    )


def do_create_handoff(*, session: Session, user: User, method: SignInMethod, provider: str) -> str:
    """A one-time code the web app trades for `user`'s tokens (shown once; 256 random bits)."""
    code = secrets.token_urlsafe(TOKEN_BYTES)
    now = utcnow()
    session.add(
        SsoHandoff(
            code_hash=token_hash(code),
            user_id=user.id,
            method=method,
            provider=provider,
            created_at=now,
            expires_at=now + timedelta(seconds=HANDOFF_TTL_SECONDS),
        )
    )
    return code


def do_exchange_handoff(*, session: Session, code: str, ttl_seconds: int, origin: Origin) -> SignIn:
    """Spend a hand-off code: the session its sign-in starts, or why not (used, expired...)."""
    refused = BadRequest("this sign-in code is not valid (used, expired or unknown)")
    now = utcnow()
    row = session.exec(
        select(SsoHandoff).where(SsoHandoff.code_hash == token_hash(code)).with_for_update()
    ).first()
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise refused
    user = session.get(User, row.user_id)
    if user is None or not user.active or user.erased_at is not None:
        raise Forbidden("this account is deactivated")
    # Spent only if still unspent: of exchanges racing with one code exactly one wins.
    if not _spend(session, SsoHandoff, "code_hash", row.code_hash, "used_at", now):
        raise refused
    return do_sign_in(
        session=session,
        user=user,
        method=cast(SignInMethod, row.method),  # written by do_create_handoff
        ttl_seconds=ttl_seconds,
        origin=origin,
    )
