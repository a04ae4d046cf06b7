"""Delete on request (GDPR erasure), digests' part.

Follows and memberships end by identity's own events (`FollowDeleted`, `GroupMemberRemoved`),
as for anyone who unfollows or leaves. Removed here: the person's schedule (replaced by
"never", so nothing is built for the tombstone) and the history of what their digests
carried; their name here becomes the tombstone's.
"""

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from services.digests import service
from services.digests.models import DigestPreference, DigestSent, DigestSentItem
from shared.events.contracts import UserErasureRequested, UserProfileUpdated
from shared.ids import utcnow
from shared.projections import do_apply_fact

# Above any version the notifications service can send (it erases the person's preferences).
ERASED_PREFERENCE_VERSION = 2**31 - 1


def _count(
    session: Session, model: type[DigestSent] | type[DigestSentItem], data: UserErasureRequested
) -> int:
    return int(
        session.exec(
            select(func.count()).select_from(model).where(model.user_id == data.user_id)
        ).one()
    )


def erase(session: Session, data: UserErasureRequested) -> dict[str, int]:
    """Forget the person's digest history and schedule; name them as the tombstone."""
    sent, items = _count(session, DigestSent, data), _count(session, DigestSentItem, data)
    session.execute(delete(DigestSent).where(col(DigestSent.user_id) == data.user_id))
    session.execute(delete(DigestSentItem).where(col(DigestSentItem.user_id) == data.user_id))
    preference = session.get(DigestPreference, data.user_id)
    do_apply_fact(
        session=session,
        model=DigestPreference,
        keys=["user_id"],
        values={
            "user_id": data.user_id,
            "frequency": "never",
            "hour": 0,
            "timezone": "UTC",
            "version": ERASED_PREFERENCE_VERSION,
            "changed_at": utcnow(),
        },
    )
    service.do_project_user(
        session=session,
        data=UserProfileUpdated(
            user_id=data.user_id,
            handle=data.replacement_handle,
            display_name=data.replacement_display_name,
            bio="",
            skills=[],
        ),
        at=data.requested_at,
    )
    return {
        "profile": 1,
        "preferences": 1 if preference is not None else 0,
        "digests_sent": sent,
        "digest_items_sent": items,
    }
