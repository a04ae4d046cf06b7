"""Identity's endpoints: parse, call the service, shape the response."""

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response, status
from sqlmodel import Session

from services.identity import access, privacy, service, sessions
from services.identity.audit import Origin
from services.identity.models import Follow, Group, Membership, User
from services.identity.schemas import (
    FollowCreate,
    FollowPublic,
    GroupCreate,
    GroupDetail,
    GroupPublic,
    LoginRequest,
    MemberAdd,
    MemberPublic,
    ProfileUpdate,
    RegisterRequest,
    TokenResponse,
    UserImport,
    UserMe,
    UserPublic,
)
from services.identity.sessions import SignIn, SignInMethod
from shared.auth import CurrentUser, Principal, TokenIssuer
from shared.db import SessionDep, read_from_store
from shared.errors import Unauthorized, problem_response
from shared.idempotency import IdempotentRoute
from shared.pagination import LIST_ERRORS, CursorParam, Page, PageSize
from shared.preconditions import PRECONDITION_FAILED, WITH_ETAG, IfMatch, check_if_match, etag
from shared.query import StrictQuery
from shared.settings import Settings

router = APIRouter(route_class=IdempotentRoute)


def token_response(request: Request, sign_in: SignIn) -> TokenResponse:
    """An access token naming the session, and the session's next refresh token."""
    issuer: TokenIssuer = request.app.state.issuer
    user = sign_in.user
    token = issuer.issue(
        user_id=user.id, handle=user.handle, role=user.role, session_id=sign_in.session.id
    )
    return TokenResponse(
        access_token=token,
        expires_in=issuer.ttl_seconds,
        refresh_token=sign_in.refresh_token,
        refresh_expires_in=sign_in.refresh_expires_in,
        session_id=sign_in.session.id,
        user=UserMe.model_validate(user, from_attributes=True),
    )


def start_session(request: Request, session: Session, user: User, method: SignInMethod) -> SignIn:
    settings: Settings = request.app.state.settings
    return sessions.do_sign_in(
        session=session,
        user=user,
        method=method,
        ttl_seconds=settings.refresh_token_ttl_seconds,
        origin=Origin.of(request),
    )


def profile_etag(user: User) -> str:
    return etag(user.id, user.version)


def group_etag(group: Group) -> str:
    return etag(group.id, group.version)


def member_public(membership: Membership, user: User) -> MemberPublic:
    return MemberPublic(
        user_id=user.id,
        handle=user.handle,
        display_name=user.display_name,
        role=membership.role,
        joined_at=membership.created_at,
    )


def read_group_detail(
    *, session: Session, group: Group, principal: Principal, response: Response
) -> GroupDetail:
    """The group as the caller sees it (their membership and role), with its ETag."""
    member, version = service.membership_state(
        session=session, group_id=group.id, user_id=principal.user_id
    )
    role = access.group_role(session=session, group_id=group.id, user_id=principal.user_id)
    response.headers["ETag"] = group_etag(group)
    return GroupDetail.model_validate(
        {**group.model_dump(), "is_member": member, "membership_version": version, "role": role},
        from_attributes=True,
    )


def group_public(group: Group, is_member: bool) -> GroupPublic:
    return GroupPublic.model_validate(
        {**group.model_dump(), "is_member": is_member}, from_attributes=True
    )


@router.get("/.well-known/jwks.json", tags=["auth"], summary="Public keys that verify tokens")
async def jwks(request: Request) -> dict[str, Any]:
    """The current, the next and (after a rotation) the previous key."""
    issuer: TokenIssuer = request.app.state.issuer
    return issuer.jwks()


@router.post(
    "/auth/register",
    tags=["auth"],
    status_code=status.HTTP_201_CREATED,
    responses={
        403: {"description": "Password sign-in is disabled (single sign-on only)"},
        409: {"description": "Handle or email taken"},
        422: {"description": "A password the policy refuses, or an unfit display name"},
    },
)
def register(request: Request, body: RegisterRequest, session: SessionDep) -> TokenResponse:
    """Create an account and sign in (an access token and a refresh token)."""
    settings: Settings = request.app.state.settings
    service.check_password_sign_in_enabled(settings=settings)
    user = service.do_register(
        session=session, request=body, first_user_is_admin=settings.first_user_is_admin
    )
    return token_response(request, start_session(request, session, user, "registration"))


@router.post(
    "/auth/login",
    tags=["auth"],
    response_model=TokenResponse,
    responses={
        401: {"description": "Wrong login or password"},
        403: {
            "description": "Password sign-in is disabled (single sign-on only), or the account "
            "is deactivated (said only for the right password)"
        },
    },
)
def login(request: Request, body: LoginRequest, session: SessionDep) -> Any:
    """Exchange a handle (or email) and password for an access token and a refresh token."""
    service.check_password_sign_in_enabled(settings=request.app.state.settings)
    try:
        user = service.check_credentials(session=session, login=body.login, password=body.password)
    except Unauthorized as exc:
        # Answered, not raised: the audit entry of the failed sign-in commits.
        sessions.record_failed_sign_in(session=session, login=body.login, origin=Origin.of(request))
        return problem_response(
            exc.status, exc.detail, instance=request.url.path, headers=exc.headers
        )
    return token_response(request, start_session(request, session, user, "password"))


@router.get("/users/me", tags=["users"], responses=WITH_ETAG)
async def read_me(principal: CurrentUser, session: SessionDep, response: Response) -> UserMe:
    user = await read_from_store(
        session, privacy.check_caller, session=session, principal=principal
    )
    response.headers["ETag"] = profile_etag(user)
    return UserMe.model_validate(user, from_attributes=True)


@router.patch("/users/me", tags=["users"], responses={**WITH_ETAG, **PRECONDITION_FAILED})
def update_me(
    principal: CurrentUser,
    body: ProfileUpdate,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> UserMe:
    """Change one's profile (If-Match: only if still at that ETag)."""
    user = privacy.check_caller(session=session, principal=principal)
    check_if_match(if_match, profile_etag(user))
    user = service.do_update_profile(session=session, user=user, update=body)
    response.headers["ETag"] = profile_etag(user)
    return UserMe.model_validate(user, from_attributes=True)


@router.post(
    "/users",
    tags=["users"],
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "Already imported from that source: the existing account"},
        403: {"description": "Only an admin imports accounts"},
        409: {"description": "The handle is taken by another account"},
    },
)
def import_user(
    principal: CurrentUser,
    body: UserImport,
    session: SessionDep,
    request: Request,
    response: Response,
) -> UserPublic:
    """Bring an account from elsewhere (admin): original creation time, no password."""
    user, created = service.do_import_user(
        session=session, principal=principal, request=body, origin=Origin.of(request)
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return UserPublic.model_validate(user, from_attributes=True)


@router.get(
    "/users/{user_id}",
    tags=["users"],
    responses={**WITH_ETAG, 404: {"description": "No such user"}},
)
async def read_user(
    user_id: UUID, _principal: CurrentUser, session: SessionDep, response: Response
) -> UserPublic:
    user = await read_from_store(session, service.check_user, session=session, user_id=user_id)
    response.headers["ETag"] = profile_etag(user)
    return UserPublic.model_validate(user, from_attributes=True)


@router.post(
    "/groups",
    tags=["groups"],
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "The slug is taken"}},
)
def create_group(principal: CurrentUser, body: GroupCreate, session: SessionDep) -> GroupPublic:
    """Create a group; the creator is its owner and first member."""
    group = service.do_create_group(session=session, principal=principal, request=body)
    return group_public(group, True)


@router.get(
    "/groups",
    tags=["groups"],
    dependencies=[StrictQuery],
    responses=LIST_ERRORS,
)
def list_groups(
    principal: CurrentUser, session: SessionDep, limit: PageSize = 20, cursor: CursorParam = None
) -> Page[GroupPublic]:
    """Open groups and the private groups the caller belongs to, by name."""
    rows, next_cursor = service.list_visible_groups(
        session=session, principal=principal, cursor=cursor, limit=limit
    )
    return Page[GroupPublic](
        items=[group_public(group, member) for group, member in rows], next_cursor=next_cursor
    )


@router.get(
    "/groups/{group_id}",
    tags=["groups"],
    responses={**WITH_ETAG, 404: {"description": "No such group"}},
)
def read_group(
    group_id: UUID, principal: CurrentUser, session: SessionDep, response: Response
) -> GroupDetail:
    group = service.check_visible_group(session=session, group_id=group_id, principal=principal)
    return read_group_detail(session=session, group=group, principal=principal, response=response)


@router.get(
    "/groups/{group_id}/members",
    tags=["groups"],
    dependencies=[StrictQuery],
    responses={**LIST_ERRORS, 404: {"description": "No such group"}},
)
def list_members(
    group_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    limit: PageSize = 20,
    cursor: CursorParam = None,
) -> Page[MemberPublic]:
    """The members of a group the caller may see, in the order they joined."""
    rows, next_cursor = service.list_members(
        session=session, principal=principal, group_id=group_id, cursor=cursor, limit=limit
    )
    return Page[MemberPublic](
        items=[member_public(membership, user) for membership, user in rows],
        next_cursor=next_cursor,
    )


@router.post(
    "/groups/{group_id}/members",
    tags=["groups"],
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"description": "No such user"},
        403: {"description": "Only the owner or a moderator adds others"},
        404: {"description": "No such group"},
        409: {"description": "Already a member"},
    },
)
def add_member(
    group_id: UUID, body: MemberAdd, principal: CurrentUser, session: SessionDep, request: Request
) -> MemberPublic:
    """The owner or a moderator adds someone; anyone may add themselves to an open group."""
    membership = service.do_add_member(
        session=session,
        principal=principal,
        group_id=group_id,
        user_id=body.user_id,
        origin=Origin.of(request),
    )
    user = service.check_user(session=session, user_id=body.user_id)
    return member_public(membership, user)


@router.delete(
    "/groups/{group_id}/members/{user_id}",
    tags=["groups"],
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        400: {"description": "The owner cannot leave the group (transfer it first)"},
        403: {"description": "Only the owner removes others; moderators remove members only"},
        404: {"description": "No such group, or not a member"},
    },
)
def remove_member(
    group_id: UUID, user_id: UUID, principal: CurrentUser, session: SessionDep, request: Request
) -> None:
    service.do_remove_member(
        session=session,
        principal=principal,
        group_id=group_id,
        user_id=user_id,
        origin=Origin.of(request),
    )


@router.post(
    "/follows",
    tags=["follows"],
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"description": "A target that does not fit its type, or yourself"},
        404: {"description": "No such person or group"},
        409: {"description": "Already following"},
    },
)
def follow(principal: CurrentUser, body: FollowCreate, session: SessionDep) -> FollowPublic:
    """Follow a person (by id), a tag, or a group (by id) for the digest."""
    created: Follow = service.do_follow(session=session, principal=principal, request=body)
    return FollowPublic.model_validate(created, from_attributes=True)


@router.get(
    "/follows",
    tags=["follows"],
    dependencies=[StrictQuery],
    responses=LIST_ERRORS,
)
def list_follows(
    principal: CurrentUser, session: SessionDep, limit: PageSize = 20, cursor: CursorParam = None
) -> Page[FollowPublic]:
    """What the caller follows, oldest first."""
    follows, next_cursor = service.list_follows(
        session=session, principal=principal, cursor=cursor, limit=limit
    )
    return Page[FollowPublic](
        items=[FollowPublic.model_validate(item, from_attributes=True) for item in follows],
        next_cursor=next_cursor,
    )


@router.delete(
    "/follows/{follow_id}",
    tags=["follows"],
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "No such follow of yours"}},
)
def unfollow(follow_id: UUID, principal: CurrentUser, session: SessionDep) -> None:
    service.do_unfollow(session=session, principal=principal, follow_id=follow_id)
