"""The home feed endpoint: parse, call `build_feed`, return."""

from fastapi import APIRouter

from services.digests.feed import build_feed
from services.digests.schemas import FeedPage
from shared.auth import CurrentUser
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.pagination import MALFORMED_CURSOR, CursorParam, PageSize

router = APIRouter(prefix="/feed", tags=["digests"], route_class=IdempotentRoute)


@router.get("", summary="My home feed", responses=MALFORMED_CURSOR)
def read_my_feed(
    principal: CurrentUser, session: SessionDep, cursor: CursorParam = None, limit: PageSize = 20
) -> FeedPage:
    """Your home feed: what the people, tags and groups you follow produced, newest first.

    Posts, replies and articles by others that one of your follows brings in, each with
    the follows that brought it (`reasons`). Only what you may read now: a private
    group's items only while you are a member; deleted and hidden items never; your own
    items are left out. If you follow nothing the feed is empty (`follows_anything` is
    false): suggest people, tags or groups to follow.
    """
    return build_feed(session=session, user_id=principal.user_id, cursor=cursor, limit=limit)
