"""The people directory: who is here, found by handle or name (@mentions, the admins' list).

One query per page, in handle order (the handle's unique index), keyset-paged on the handle.
Erased people are never listed; deactivated ones only to admins who ask for them.
"""

from dataclasses import dataclass

from sqlmodel import Session, col, or_, select

from services.identity import access
from services.identity.models import User
from shared.auth import Principal
from shared.errors import BadRequest
from shared.events.contracts import OrganisationRole
from shared.pagination import decode_cursor, paginate


@dataclass(frozen=True)
class PeopleFilter:
    """What the directory is asked for; `include_inactive` and `role` are the admins'."""

    q: str | None = None
    include_inactive: bool | None = None
    role: OrganisationRole | None = None


def _like_prefix(text: str) -> str:
    """`text` as a LIKE prefix pattern, its own `%`, `_` and `\\` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


def check_directory_filter(*, principal: Principal, where: PeopleFilter) -> None:
    """Inactive people and roles are the admins' business: anyone else asking gets a 403."""
    if where.include_inactive is not None or where.role is not None:
        access.check_admin(principal, "filter people by role or include deactivated people")


def list_people(
    *, session: Session, principal: Principal, where: PeopleFilter, cursor: str | None, limit: int
) -> tuple[list[User], str | None]:
    """A page of people by handle, and the cursor of the next page (None on the last)."""
    check_directory_filter(principal=principal, where=where)
    statement = select(User).where(col(User.erased_at).is_(None))
    if not where.include_inactive:
        statement = statement.where(col(User.active).is_(True))
    if where.role is not None:
        statement = statement.where(User.role == where.role)
    # Blank is no filter: nothing typed yet after the `@`.
    text = (where.q or "").strip()
    if text:
        prefix = _like_prefix(text.lower())
        statement = statement.where(
            or_(
                col(User.handle).like(prefix, escape="\\"),
                col(User.display_name).ilike(prefix, escape="\\"),
                # Any later word of the name: "love" finds "Ada Lovelace".
                col(User.display_name).ilike(f"% {prefix}", escape="\\"),
            )
        )
    after = decode_cursor(cursor, 1)
    if after is not None:
        if not isinstance(after[0], str):
            raise BadRequest("malformed cursor")
        statement = statement.where(col(User.handle) > after[0])
    statement = statement.order_by(col(User.handle))
    return paginate(session, statement, limit=limit, cursor_of=lambda row: [row.handle])
