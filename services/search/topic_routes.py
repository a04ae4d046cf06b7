"""Tags and a person's topics: autocomplete and the person page, parse, call, shape."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from services.search import service
from services.search.models import SearchUser
from services.search.routes import SearchEngineDep
from services.search.schemas import (
    EvidenceItem,
    PersonExpertise,
    PersonTopic,
    TagList,
    TagUse,
)
from shared.auth import CurrentUser
from shared.db import SessionDep
from shared.errors import NotFound
from shared.idempotency import IdempotentRoute

router = APIRouter(tags=["search"], route_class=IdempotentRoute)


@router.get("/tags", summary="Tags by prefix (autocomplete)")
def list_tags(
    principal: CurrentUser,
    session: SessionDep,
    engine: SearchEngineDep,
    prefix: Annotated[
        str,
        Query(
            max_length=51,
            description="The start of a tag, with or without '#', any case; empty: all tags.",
        ),
    ] = "",
    limit: Annotated[int, Query(ge=1, le=50, description="Tags to return.")] = 10,
) -> TagList:
    """Tags starting with a prefix (autocomplete), most used first, with their use counts.

    Counted over the items the caller may see: a tag used only inside a private group
    the caller is not a member of never appears.
    """
    tags = service.list_tags(
        session=session, engine=engine, principal=principal, prefix=prefix, limit=limit
    )
    return TagList(items=[TagUse(tag=tag.tag, count=tag.count) for tag in tags])


@router.get(
    "/experts/{user_id}",
    summary="What a person knows about",
    responses={404: {"description": "Unknown person"}},
)
def read_person_expertise(
    user_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    engine: SearchEngineDep,
    limit: Annotated[int, Query(ge=1, le=20, description="Topics to return.")] = 5,
) -> PersonExpertise:
    """What a person knows about (for their page): topics strongest first, with evidence.

    Topics are the tags on the person's items and on the threads they answered in; each
    is scored as `GET /experts?topic=<tag>` scores the person, with the same evidence.
    Judged only by what the caller may see.
    """
    user = session.get(SearchUser, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    topics = service.find_person_topics(
        session=session, engine=engine, principal=principal, user_id=user_id, limit=limit
    )
    return PersonExpertise(
        user_id=user.user_id,
        handle=user.handle,
        display_name=user.display_name,
        topics=[
            PersonTopic(
                tag=topic.tag,
                items=topic.count,
                score=expert.score,
                thanks=expert.thanks,
                why=expert.why,
                evidence=[EvidenceItem.of(item) for item in expert.evidence],
            )
            for topic, expert in topics
        ],
    )
