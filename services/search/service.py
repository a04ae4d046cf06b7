"""Search's rules: what goes into the index, who may see what, and the two queries.

Functions here write through the caller's session (or an engine bound to it) and never
commit: the request, or the consumer runner, owns the transaction.
"""

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from services.search.engines.base import (
    Deletion,
    Expert,
    ExpertQuery,
    IndexDoc,
    Prior,
    SearchEngine,
    SearchFilters,
    SearchHit,
    SearchPage,
    Signals,
    SimilarQuery,
    TagCount,
    TextQuery,
    normalise_tag,
)
from services.search.engines.expertise import (
    MEANING_KINDS,
    MEANING_TOP,
    MEMBER_WEIGHT,
    SKILL_WEIGHT,
    with_meaning,
)
from services.search.models import (
    SearchAcceptance,
    SearchGroup,
    SearchItemScore,
    SearchMembership,
    SearchSkill,
    SearchThanks,
    SearchUser,
)
from services.search.semantic import hybrid
from services.search.semantic.index import VectorIndex, Vectors
from services.search.semantic.service import Semantic
from shared.auth import Principal
from shared.db import in_list
from shared.errors import BadRequest
from shared.events.contracts import ContentEvent, ContentSnapshot, QuestionSnapshot
from shared.projections import do_apply_fact


def doc_from_snapshot(data: ContentSnapshot) -> IndexDoc:
    """The index's view of a content event."""
    tags = tuple(dict.fromkeys(tag for tag in map(normalise_tag, data.tags) if tag))
    return IndexDoc(
        id=data.content_id,
        version=data.version,
        kind=data.kind,
        title=data.title,
        body=data.body,
        tags=tags,
        author_id=data.author_id,
        group_id=data.group_id,
        visibility=data.visibility,
        parent_id=data.parent_id,
        # A reply belongs to its thread; without a thread id its parent is the best guess.
        thread_id=data.thread_id or (data.parent_id if data.kind == "reply" else None),
        created_at=data.created_at,
        updated_at=data.updated_at,
        mentions=tuple(dict.fromkeys(data.mentions)),
        accepted_answer_id=data.accepted_answer_id if isinstance(data, QuestionSnapshot) else None,
        duplicate_of=data.duplicate_of if isinstance(data, QuestionSnapshot) else None,
    )


def operation_for(data: ContentEvent) -> IndexDoc | Deletion:
    """The index operation a content event asks for (a hidden item leaves like a deleted one)."""
    if isinstance(data, ContentSnapshot) and not data.hidden:
        return doc_from_snapshot(data)
    return Deletion(id=data.content_id, version=data.version)


def do_index_content(*, engine: SearchEngine, data: ContentSnapshot) -> None:
    """Index the item's current state unless the index already holds a newer one.

    A hidden item is removed at its version; shown again (a higher version), it comes back.
    """
    if data.hidden:
        engine.delete([Deletion(id=data.content_id, version=data.version)])
        return
    engine.index([doc_from_snapshot(data)])


def do_delete_content(*, engine: SearchEngine, data: ContentEvent) -> None:
    """Remove the item and leave a tombstone at its version."""
    engine.delete([Deletion(id=data.content_id, version=data.version)])


def do_record_user(
    *,
    session: Session,
    user_id: UUID,
    handle: str,
    display_name: str,
    at: datetime,
    skills: Collection[str] | None = None,
) -> None:
    """Remember a person's handle, name and skills, unless a newer change is already known.

    `skills` None (a registration) leaves declared skills as they are.
    """
    user = session.get(SearchUser, user_id)
    if user is None:
        session.add(
            SearchUser(user_id=user_id, handle=handle, display_name=display_name, changed_at=at)
        )
    elif user.changed_at <= at:
        user.handle, user.display_name, user.changed_at = handle, display_name, at
        session.add(user)
    else:
        return  # an older profile than the one applied
    if skills is not None:
        session.execute(delete(SearchSkill).where(col(SearchSkill.user_id) == user_id))
        session.flush()
        for skill in dict.fromkeys(tag for tag in map(normalise_tag, skills) if tag):
            session.add(SearchSkill(skill=skill, user_id=user_id))


def do_set_score(
    *, session: Session, content_id: UUID, author_id: UUID, score: int, version: int, at: datetime
) -> None:
    """Record an item's vote score; a vote no newer than the one applied is ignored."""
    do_apply_fact(
        session=session,
        model=SearchItemScore,
        keys=["content_id"],
        values={
            "content_id": content_id,
            "author_id": author_id,
            "score": score,
            "version": version,
            "changed_at": at,
        },
    )


def do_set_acceptance(
    *, session: Session, question_id: UUID, answer_id: UUID | None, version: int, at: datetime
) -> None:
    """Record a question's accepted answer at the question's version (older ones ignored)."""
    do_apply_fact(
        session=session,
        model=SearchAcceptance,
        keys=["question_id"],
        values={
            "question_id": question_id,
            "answer_id": answer_id,
            "version": version,
            "changed_at": at,
        },
    )


def do_record_group(
    *, session: Session, group_id: UUID, slug: str, name: str, visibility: str, owner_id: UUID
) -> None:
    group = session.get(SearchGroup, group_id)
    if group is None:
        session.add(
            SearchGroup(
                group_id=group_id, slug=slug, name=name, visibility=visibility, owner_id=owner_id
            )
        )


def do_set_membership(
    *,
    session: Session,
    group_id: UUID,
    user_id: UUID,
    is_member: bool,
    version: int,
    at: datetime,
) -> None:
    """Record joining or leaving; a fact no newer than the one applied is ignored."""
    do_apply_fact(
        session=session,
        model=SearchMembership,
        keys=["group_id", "user_id"],
        values={
            "group_id": group_id,
            "user_id": user_id,
            "is_member": is_member,
            "version": version,
            "changed_at": at,
        },
    )


def do_set_thanks(
    *,
    session: Session,
    content_id: UUID,
    author_id: UUID,
    user_id: UUID,
    is_thanked: bool,
    at: datetime,
) -> None:
    """Record a thanks given or taken back; an older event than the one applied is ignored.

    At equal times taking back wins, as leaving a group does. Thanking oneself is no
    evidence (posts refuses it too), so it is never recorded.
    """
    if user_id == author_id:
        return
    thanks = session.get(SearchThanks, (content_id, user_id))
    if thanks is None:
        session.add(
            SearchThanks(
                content_id=content_id, user_id=user_id, is_thanked=is_thanked, changed_at=at
            )
        )
        return
    stored_at = thanks.changed_at
    if at > stored_at or (at == stored_at and not is_thanked):
        thanks.is_thanked, thanks.changed_at = is_thanked, at
        session.add(thanks)


# Ids per query when counting thanks: well under every database's bound-parameter limit.
_THANKS_CHUNK = 500


def count_thanks(*, session: Session, content_ids: Collection[UUID]) -> dict[UUID, int]:
    """How many people currently thank each of these items (items without thanks are absent).

    Callers pass only items the reader may see (an engine's expert candidates), so a
    thanks on anything else cannot reach them.
    """
    ids = list(content_ids)
    counts: dict[UUID, int] = {}
    for start in range(0, len(ids), _THANKS_CHUNK):
        chunk = ids[start : start + _THANKS_CHUNK]
        query = (
            select(SearchThanks.content_id, func.count())
            .where(
                in_list(SearchThanks.content_id, chunk),
                col(SearchThanks.is_thanked).is_(True),
            )
            .group_by(col(SearchThanks.content_id))
        )
        counts.update({content_id: count for content_id, count in session.exec(query).all()})
    return counts


def list_member_groups(*, session: Session, user_id: UUID) -> list[UUID]:
    """The groups whose non-public content this person may see."""
    query = select(SearchMembership.group_id).where(
        SearchMembership.user_id == user_id, col(SearchMembership.is_member).is_(True)
    )
    return list(session.exec(query).all())


def search_content(
    *,
    session: Session,
    engine: SearchEngine,
    principal: Principal,
    query: TextQuery,
    text: str,
    filters: SearchFilters,
    cursor: str | None,
    limit: int,
    semantic: Semantic,
) -> SearchPage:
    """One page of the content the caller may see that matches the query, in words or meaning."""
    groups = list_member_groups(session=session, user_id=principal.user_id)
    if not semantic.enabled:
        return engine.search(query, filters, groups, cursor, limit)
    return hybrid.search(engine, semantic, query, text, filters, groups, cursor, limit)


def count_signals(*, session: Session, content_ids: Collection[UUID]) -> dict[UUID, Signals]:
    """Votes, acceptance and thanks of each of these items (items with none are absent).

    Callers pass only items the reader may see (an engine's expert candidates), so a
    signal on anything else cannot reach them.
    """
    ids = list(content_ids)
    thanks = count_thanks(session=session, content_ids=ids)
    scores: dict[UUID, int] = {}
    accepted: set[UUID] = set()
    for start in range(0, len(ids), _THANKS_CHUNK):
        chunk = ids[start : start + _THANKS_CHUNK]
        scores.update(
            session.exec(
                select(SearchItemScore.content_id, SearchItemScore.score).where(
                    in_list(SearchItemScore.content_id, chunk)
                )
            ).all()
        )
        accepted.update(
            answer_id
            for answer_id in session.exec(
                select(SearchAcceptance.answer_id).where(in_list(SearchAcceptance.answer_id, chunk))
            ).all()
            if answer_id is not None
        )
    return {
        content_id: Signals(
            score=scores.get(content_id, 0),
            accepted=content_id in accepted,
            thanks=thanks.get(content_id, 0),
        )
        for content_id in set(thanks) | set(scores) | accepted
    }


def list_priors(*, session: Session, query: ExpertQuery, groups: Collection[UUID]) -> list[Prior]:
    """Declared skills on the query's tags or words, and members of the question's group.

    Members count only when the caller is one too (so a private group's roster never
    reaches an outsider).
    """
    wanted = sorted(set(query.tags) | set(query.terms))
    priors = []
    if wanted:
        declared = session.exec(
            select(SearchSkill.user_id, SearchSkill.skill).where(in_list(SearchSkill.skill, wanted))
        ).all()
        for user_id, skill in sorted(declared, key=lambda row: (str(row[0]), row[1])):
            priors.append(Prior(user_id=user_id, why=f"declares {skill}", weight=SKILL_WEIGHT))
    if query.group_id is not None and query.group_id in groups:
        group = session.get(SearchGroup, query.group_id)
        members = session.exec(
            select(SearchMembership.user_id).where(
                SearchMembership.group_id == query.group_id,
                col(SearchMembership.is_member).is_(True),
            )
        ).all()
        name = group.name if group else "the question's group"
        for user_id in members:
            priors.append(Prior(user_id=user_id, why=f"member of {name}", weight=MEMBER_WEIGHT))
    return priors


def find_similar_questions(
    *,
    session: Session,
    engine: SearchEngine,
    principal: Principal,
    draft: SimilarQuery,
    text: str,
    limit: int,
    semantic: Semantic,
) -> list[SearchHit]:
    """The questions the caller may see that are most like their draft, best first."""
    groups = list_member_groups(session=session, user_id=principal.user_id)
    if not semantic.enabled:
        return engine.similar_questions(draft, groups, limit)
    return hybrid.similar_questions(engine, semantic, draft, text, groups, limit)


# With meaning on, the engine ranks this many people before meaning reorders them (the
# most `/experts` returns), so `limit` 10 is the first 10 of `limit` 100; and this many
# of the question's closest answers let in people whose words differ.
MEANING_POOL = 100
MEANING_NEAREST = 100


def find_experts(
    *,
    session: Session,
    engine: SearchEngine,
    principal: Principal,
    topic: ExpertQuery | TextQuery,
    text: str,
    limit: int,
    semantic: Semantic,
    groups: Collection[UUID] | None = None,
) -> list[tuple[Expert, SearchUser | None]]:
    """People ranked by the evidence the caller may see, with their profiles.

    `topic` is a question as asked (`ExpertQuery`: words, tags, group) or a bare topic;
    `text` the same in words (a question's title and body, or the topic), for meaning.
    `groups` narrows the evidence to these of the caller's groups (routing: a public
    question is ranked on public content only); None means all of them. With the model
    on, how close each person's visible answers are in meaning reorders them (and lets
    in people who answered it in other words; see `expertise.with_meaning`); without it
    the ranking is the engine's.
    """
    query = ExpertQuery.of(topic)
    member_of = list_member_groups(session=session, user_id=principal.user_id)
    groups = member_of if groups is None else [group for group in member_of if group in groups]
    vector = semantic.query_vector(text) if semantic.enabled and text.strip() else None
    experts = engine.experts(
        query,
        groups,
        limit if vector is None else max(limit, MEANING_POOL),
        # Only the candidates (already filtered to what the caller may see) are looked up.
        signals=lambda content_ids: count_signals(session=session, content_ids=content_ids),
        priors=list_priors(session=session, query=query, groups=groups),
    )
    if vector is not None and semantic.index is not None:
        experts = _with_meaning(
            session=session,
            index=semantic.index,
            vector=vector,
            experts=experts,
            groups=groups,
            limit=limit,
        )
    ids = [expert.user_id for expert in experts]
    users = {
        user.user_id: user
        for user in session.exec(select(SearchUser).where(in_list(SearchUser.user_id, ids))).all()
    }
    return [(expert, users.get(expert.user_id)) for expert in experts]


def _with_meaning(
    *,
    session: Session,
    index: VectorIndex,
    vector: Vectors,
    experts: Sequence[Expert],
    groups: Collection[UUID],
    limit: int,
) -> list[Expert]:
    """The engine's ranking reordered by meaning, over answers in `groups` or public only."""
    near = index.nearest(
        vector, groups, MEANING_NEAREST, kinds=MEANING_KINDS, floor=hybrid.MIN_SIMILARITY
    )
    close = Counter(index.authors(content_id for content_id, _ in near))
    people = {expert.user_id for expert in experts} | set(close)
    affinity = index.affinity(vector, people, groups, kinds=MEANING_KINDS, top=MEANING_TOP)
    return with_meaning(experts, affinity, close, floor=hybrid.MIN_SIMILARITY, limit=limit)


def list_tags(
    *, session: Session, engine: SearchEngine, principal: Principal, prefix: str, limit: int
) -> list[TagCount]:
    """Tags starting with `prefix` on what the caller may see, most used first.

    Counted over visible items only, so a tag used only inside a private group is never
    shown to a non-member (its name is information).
    """
    groups = list_member_groups(session=session, user_id=principal.user_id)
    return engine.tag_counts(normalise_tag(prefix), groups, limit)


# A person's most frequent tags beyond the number asked for are scored too, since the
# strongest topic need not be the most frequent one.
TOPIC_SLACK = 5


def find_person_topics(
    *, session: Session, engine: SearchEngine, principal: Principal, user_id: UUID, limit: int
) -> list[tuple[TagCount, Expert]]:
    """What a person knows about, strongest first, judged by what the caller may see.

    Each topic is one of the tags on the person's visible items (or on the threads they
    answered in), scored exactly as `GET /experts?topic=<tag>` scores them: the same
    engine query, restricted to this person.
    """
    groups = list_member_groups(session=session, user_id=principal.user_id)
    scored = []
    for topic in engine.authored_topics(user_id, groups, limit + TOPIC_SLACK):
        try:
            query = ExpertQuery.of(TextQuery.parse(topic.tag))
        except BadRequest:
            continue  # a tag with no word in it cannot be searched as a topic
        found = engine.experts(
            query,
            groups,
            1,
            signals=lambda content_ids: count_signals(session=session, content_ids=content_ids),
            priors=list_priors(session=session, query=query, groups=groups),
            person=user_id,
        )
        if found:
            scored.append((topic, found[0]))
    scored.sort(key=lambda pair: (-pair[1].score, -pair[0].count, pair[0].tag))
    return scored[:limit]
