"""Delete on request (GDPR erasure), search's part.

The index holds content, not people: names are looked up in `search_user`, which takes the
tombstone's name here (as identity's profile event also does); mentions in indexed text are
rewritten by posts, whose updated snapshots re-index every item that named the person, on
either engine. Removed here: the person's declared skills and the routing asks addressed to
them (why they were picked, and how they answered).
"""

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from services.search import service
from services.search.models import SearchSkill
from services.search.routing.models import RoutingAsk
from shared.events.contracts import UserErasureRequested


def erase(session: Session, data: UserErasureRequested) -> dict[str, int]:
    """Remove the person's skills and asks here, and name them as the tombstone."""
    skills = session.exec(
        select(func.count()).select_from(SearchSkill).where(SearchSkill.user_id == data.user_id)
    ).one()
    asks = session.exec(
        select(func.count()).select_from(RoutingAsk).where(RoutingAsk.user_id == data.user_id)
    ).one()
    session.execute(delete(RoutingAsk).where(col(RoutingAsk.user_id) == data.user_id))
    service.do_record_user(
        session=session,
        user_id=data.user_id,
        handle=data.replacement_handle,
        display_name=data.replacement_display_name,
        at=data.requested_at,
        skills=[],
    )
    return {"profile": 1, "skills": skills, "routing_asks": asks}
