"""One-click unsubscribe (RFC 8058): links signed with the service's key, and what they change."""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import get_args
from urllib.parse import urlencode
from uuid import UUID

from itsdangerous import BadSignature, URLSafeSerializer
from sqlmodel import Session

from services.notifications.models import NotificationPreference
from services.notifications.service import DEFAULT_CHANNELS, SOURCE, channel_for
from shared.errors import BadRequest
from shared.events.contracts import NotificationKind, NotificationPreferencesUpdated
from shared.events.outbox import record_event
from shared.ids import utcnow
from shared.keyfiles import load_or_create_key
from shared.settings import Settings

ALL = "all"
SALT = "knowflow.notifications.unsubscribe"
UNSUBSCRIBE_PATH = "/api/v1/notifications/unsubscribe"


@dataclass(frozen=True)
class Unsubscription:
    user_id: UUID
    kind: str  # a NotificationKind, or "all"


@lru_cache(maxsize=8)
def _serializer_for(path: Path) -> URLSafeSerializer:
    return URLSafeSerializer(load_or_create_key(path), salt=SALT)


def serializer(settings: Settings) -> URLSafeSerializer:
    """Signs with the key in `signing_key_file` (read once per process)."""
    return _serializer_for(settings.signing_key_file)


def unsubscribe_token(settings: Settings, *, user_id: UUID, kind: str) -> str:
    """A token naming the person and the kind ("all": every e-mail)."""
    return str(serializer(settings).dumps({"u": str(user_id), "k": kind}))


def unsubscribe_url(settings: Settings, *, user_id: UUID, kind: str) -> str:
    token = unsubscribe_token(settings, user_id=user_id, kind=kind)
    return f"{settings.public_url.rstrip('/')}{UNSUBSCRIBE_PATH}?{urlencode({'token': token})}"


def check_token(settings: Settings, token: str) -> Unsubscription:
    """The unsubscription a token names; BadRequest if it is not one we signed."""
    try:
        payload = serializer(settings).loads(token)
        user_id = UUID(payload["u"])
        kind = str(payload["k"])
    except (BadSignature, KeyError, TypeError, ValueError) as exc:
        raise BadRequest("this unsubscribe link is not valid") from exc
    if kind != ALL and kind not in get_args(NotificationKind):
        raise BadRequest("this unsubscribe link is not valid")
    return Unsubscription(user_id=user_id, kind=kind)


def do_unsubscribe(*, session: Session, unsubscription: Unsubscription) -> list[str]:
    """Move the kind (or every kind) from e-mail to the inbox; the kinds that changed."""
    preference = session.get(NotificationPreference, unsubscription.user_id)
    if preference is None:
        preference = NotificationPreference(user_id=unsubscription.user_id)
    kinds = list(DEFAULT_CHANNELS) if unsubscription.kind == ALL else [unsubscription.kind]
    changed = [kind for kind in kinds if channel_for(preference, kind) == "email"]
    if not changed:
        return []  # clicked twice, or already changed: nothing to do, still a success
    # A new dict, so the JSON column sees the change.
    preference.channels = {**preference.channels, **dict.fromkeys(changed, "inbox")}
    preference.version += 1
    preference.updated_at = utcnow()
    session.add(preference)
    record_event(
        session,
        NotificationPreferencesUpdated(
            user_id=preference.user_id,
            digest_frequency=preference.digest_frequency,
            digest_hour=preference.digest_hour,
            timezone=preference.timezone,
            version=preference.version,
        ),
        source=SOURCE,
    )
    return changed
