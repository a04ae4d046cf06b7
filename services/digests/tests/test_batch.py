"""The round's batched build gives everyone the digest their own reading (`build_digest`) gives."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from services.digests.batch import Request, build_digests
from services.digests.digest import build_digest
from services.digests.models import DigestSentItem
from services.digests.tests.factories import content, reply
from shared.events.contracts import (
    ArticleCreated,
    FollowCreated,
    FollowDeleted,
    GroupCreated,
    GroupMemberAdded,
    GroupMemberRemoved,
    UserRegistered,
)
from shared.ids import new_id, utcnow

Publish = Callable[..., None]


def follow(follower: UUID, target_type: str, target: object) -> FollowCreated:
    return FollowCreated(follower_id=follower, target_type=target_type, target=str(target))


def shown(digest: Any) -> list[UUID]:
    return [item.content_id for section in digest.sections for item in section.items]


def test_batched_digests_equal_each_persons_own_reading(
    client: TestClient, publish: Publish
) -> None:
    names = ["ann", "bob", "cid", "dee", "eve", "fay", "gus", "hal"]
    ann, bob, cid, dee, eve, fay, gus, hal = people = [new_id() for _ in names]
    secret, open_group = new_id(), new_id()
    old_root = content(author=bob, title="Old", hours_ago=24 * 9, tags=("python",))
    private_post = content(author=dee, group_id=secret, private=True, tags=("python",))
    items = [
        old_root,
        private_post,
        content(author=bob, tags=("python", "sql"), hours_ago=2, mentions=("ann",)),
        content(author=bob, model=ArticleCreated, kind="article", title="A", hours_ago=30),
        content(author=cid, group_id=open_group, tags=("sql",), hours_ago=5),
        content(author=eve, tags=("rust",), hours_ago=24 * 3),
        content(author=gus, hours_ago=24 * 8),  # before the weekly window
        content(author=dee, group_id=secret, private=True, hours_ago=10),
        content(author=cid, hours_ago=1, tags=("python",)),
    ]
    replies = [
        reply(author=cid, to=old_root, hours_ago=3),  # brings the old thread back
        reply(author=ann, to=old_root, hours_ago=2),
        reply(author=eve, to=items[5], hours_ago=4, mentions=("fay",)),
        reply(author=dee, to=private_post, hours_ago=1, mentions=("ann",)),
        reply(author=fay, to=private_post, hours_ago=1),
        reply(author=gus, to=items[4], hours_ago=2),  # gus replies in a thread hal sees
        reply(author=ann, to=items[8], hours_ago=0.5),  # only ann's own reply
    ]
    publish(
        *(
            UserRegistered(user_id=person, handle=name, display_name=name.title())
            for person, name in zip(people, names, strict=True)
        ),
        GroupCreated(group_id=secret, visibility="private", slug="s", name="S", owner_id=dee),
        GroupCreated(group_id=open_group, visibility="open", slug="o", name="O", owner_id=cid),
        *(
            GroupMemberAdded(group_id=secret, visibility="private", user_id=member, role="member")
            for member in (dee, ann, fay, gus)
        ),
        follow(ann, "user", bob),
        follow(ann, "tag", "python"),
        follow(ann, "group", secret),
        follow(bob, "user", cid),
        follow(bob, "tag", "sql"),
        follow(cid, "user", bob),
        follow(cid, "user", dee),
        follow(cid, "group", secret),  # follows a private group without being a member
        follow(dee, "tag", "python"),
        follow(dee, "user", fay),
        follow(eve, "tag", "rust"),
        follow(eve, "user", eve),
        follow(fay, "user", eve),
        follow(fay, "user", dee),
        follow(gus, "group", secret),  # a member who leaves below
        follow(gus, "tag", "python"),
        follow(hal, "user", gus),
        follow(hal, "group", open_group),
        follow(hal, "tag", "gone"),
        *items,
        *replies,
    )
    publish(
        GroupMemberRemoved(group_id=secret, visibility="private", user_id=gus),
        FollowDeleted(follower_id=hal, target_type="tag", target="gone"),
    )
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    now = utcnow()
    until = now - timedelta(minutes=1)
    with Session(engine) as session:
        # An item ann's earlier digest carried is never sent again.
        session.add(DigestSentItem(user_id=ann, content_id=items[2].content_id, sent_at=now))
        session.commit()
    with Session(engine) as session:
        batched = build_digests(
            session=session,
            requests=[Request(person, "weekly", until, None) for person in people]
            + [Request(new_id(), "daily", until, until - timedelta(hours=25))],
            now=now,
        )
        for person in people:
            alone = build_digest(
                session=session,
                user_id=person,
                period="weekly",
                now=now,
                until=until,
                exclude=frozenset({items[2].content_id}) if person == ann else frozenset(),
            )
            assert batched[person].model_dump() == alone.model_dump(), names[people.index(person)]

    # The population says something: private items reach members only, the left member
    # and the follower who never joined get none, and revived threads come back.
    assert private_post.content_id in shown(batched[ann])
    assert items[2].content_id not in shown(batched[ann])
    assert old_root.content_id in shown(batched[cid])
    assert private_post.content_id in shown(batched[fay])
    assert not {private_post.content_id, items[7].content_id} & set(shown(batched[cid]))
    assert not {private_post.content_id, items[7].content_id} & set(shown(batched[gus]))
    assert items[4].content_id in shown(batched[hal])
    assert sum(len(shown(digest)) for digest in batched.values()) >= 12
