"""The people directory over HTTP: `GET /users` (see `directory`)."""

from typing import Annotated

from fastapi import APIRouter, Query

from services.identity import directory
from services.identity.directory import PeopleFilter
from services.identity.schemas import UserAdminView, UserPublic
from shared.auth import CurrentUser
from shared.db import SessionDep
from shared.events.contracts import OrganisationRole
from shared.idempotency import IdempotentRoute
from shared.pagination import LIST_ERRORS, CursorParam, Page, PageSize
from shared.query import StrictQuery

router = APIRouter(route_class=IdempotentRoute, tags=["users"])

SearchText = Annotated[
    str,
    Query(
        min_length=1,
        max_length=100,
        description="Case-insensitive prefix of the handle, the display name or any word "
        "of the display name (`ada`, `love` for Ada Lovelace); blanks around it do not count.",
    ),
]


@router.get(
    "/users",
    summary="Find people (the directory)",
    dependencies=[StrictQuery],
    responses={
        **LIST_ERRORS,
        403: {"description": "`include_inactive` or `role` from someone who is not an admin"},
    },
)
def list_people(
    principal: CurrentUser,
    session: SessionDep,
    q: SearchText | None = None,
    limit: PageSize = 20,
    cursor: CursorParam = None,
    include_inactive: Annotated[
        bool | None, Query(description="Admins only: deactivated people too.")
    ] = None,
    role: Annotated[
        OrganisationRole | None, Query(description="Admins only: people with this role.")
    ] = None,
) -> Page[UserAdminView | UserPublic]:
    """People by handle, for @mention autocomplete and the people directory.

    Everyone signed in gets active people's public profiles. Admins get each person's admin
    view (`email`, `role`, `active`, `deactivated_at`) and may filter by role and include
    deactivated people. Erased people are never listed.
    """
    people, next_cursor = directory.list_people(
        session=session,
        principal=principal,
        where=PeopleFilter(q=q, include_inactive=include_inactive, role=role),
        cursor=cursor,
        limit=limit,
    )
    view = UserAdminView if principal.is_admin else UserPublic
    return Page[UserAdminView | UserPublic](
        items=[view.model_validate(user, from_attributes=True) for user in people],
        next_cursor=next_cursor,
    )
