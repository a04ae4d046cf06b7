"""The round's batched build gives everyone the digest their own reading (`build_digest`) gives."""

import random
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from services.digests import batch, window
from services.digests.batch import Request, Windows, build_digests, window_of
from services.digests.delivery import DueDigest, chunks_by_window, request_of
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
    PostCreated,
    PostDeleted,
    UserRegistered,
)
from shared.ids import new_id, utcnow

Publish = Callable[..., None]


def follow(follower: UUID, target_type: str, target: object) -> FollowCreated:
    return FollowCreated(follower_id=follower, target_type=target_type, target=str(target))


def shown(digest: Any) -> list[UUID]:
    return [item.content_id for section in digest.sections for item in section.items]


def batched_equal_alone(
    engine: Engine,
    people: dict[UUID, str],
    *,
    now: datetime,
    sent: dict[UUID, set[UUID]],
    others: Sequence[Request] = (),
) -> dict[UUID, Any]:
    """Everyone's weekly digest built in one batch, asserted equal to their own reading."""
    until = now - timedelta(minutes=1)
    with Session(engine) as session:
        batched = build_digests(
            session=session,
            requests=[*(Request(person, "weekly", until, None) for person in people), *others],
            now=now,
        )
        for person, name in people.items():
            alone = build_digest(
                session=session,
                user_id=person,
                period="weekly",
                now=now,
                until=until,
                exclude=frozenset(sent.get(person, ())),
            )
            assert batched[person].model_dump() == alone.model_dump(), name
    return batched


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
    batched = batched_equal_alone(
        engine,
        dict(zip(people, names, strict=True)),
        now=now,
        sent={ann: {items[2].content_id}},
        others=[Request(new_id(), "daily", until, until - timedelta(hours=25))],
    )

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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_picking_by_source_gives_every_persons_own_reading_on_a_random_population(
    client: TestClient, publish: Publish, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Sections past their cap, big sources (bit masks) and small ones (walked), items under
    several followed tags, threads only followed repliers bring in, mentions, private groups,
    old threads only the reader replied to, and items sent before: batch equals alone."""
    rng = random.Random(seed)
    if seed == 3:
        monkeypatch.setattr(window, "BIG", 3)  # nearly every source a mask
    names = [f"p{k}" for k in range(14)]
    people = [new_id() for _ in names]
    secret, other_secret, open_group = new_id(), new_id(), new_id()
    tags = ["hot", "warm", "cool", "cold", "rare"]
    members = {secret: people[:6], other_secret: people[4:9], open_group: people[7:]}
    events: list[Any] = [
        *(
            UserRegistered(user_id=person, handle=name, display_name=name.title())
            for person, name in zip(people, names, strict=True)
        ),
        GroupCreated(group_id=secret, visibility="private", slug="s", name="S", owner_id=people[0]),
        GroupCreated(
            group_id=other_secret, visibility="private", slug="t", name="T", owner_id=people[4]
        ),
        GroupCreated(
            group_id=open_group, visibility="open", slug="o", name="O", owner_id=people[7]
        ),
        *(
            GroupMemberAdded(group_id=group, visibility="private", user_id=member, role="member")
            for group in (secret, other_secret)
            for member in members[group]
        ),
    ]
    for person in people:
        for _ in range(rng.randint(2, 7)):
            kind = rng.choice(["user", "user", "tag", "tag", "group"])
            target: object = (
                rng.choice(people)
                if kind == "user"
                else rng.choice(tags)
                if kind == "tag"
                else rng.choice([secret, other_secret, open_group])
            )
            events.append(follow(person, kind, target))
    roots = []
    for k in range(140):
        group = rng.choice([None, None, None, secret, other_secret, open_group])
        private = group in (secret, other_secret)
        author = rng.choice(members[group] if group else people[:4] if k % 3 else people)
        item_tags = rng.sample(["hot", "hot", "warm", "cool", "cold", "rare"], rng.randint(0, 3))
        roots.append(
            content(
                author=author,
                group_id=group,
                private=private,
                tags=tuple(dict.fromkeys(item_tags)),
                mentions=(rng.choice(names),) if rng.random() < 0.15 else (),
                hours_ago=rng.uniform(0.1, 24 * 10),  # some before the week
                model=ArticleCreated if rng.random() < 0.2 else PostCreated,
                kind="post",
            )
        )
    replies = []
    for _ in range(220):
        root = rng.choice(roots[:40]) if rng.random() < 0.6 else rng.choice(roots)
        group = root.group_id
        author = rng.choice(members[group] if group in (secret, other_secret) else people)
        replies.append(
            reply(
                author=author,
                to=root,
                hours_ago=rng.uniform(0.05, 24 * 6),
                mentions=(rng.choice(names),) if rng.random() < 0.1 else (),
            )
        )
    publish(*events, *roots, *replies)
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    now = utcnow()
    sent = {person: {r.content_id for r in rng.sample(roots, 12)} for person in people[::2]}
    with Session(engine) as session:
        for person, content_ids in sent.items():
            session.add_all(
                DigestSentItem(user_id=person, content_id=c, sent_at=now) for c in content_ids
            )
        session.commit()
    batched = batched_equal_alone(engine, dict(zip(people, names, strict=True)), now=now, sent=sent)
    digests = list(batched.values())
    assert sum(d.omitted_items for d in digests) > 0  # some sections ran past their cap
    assert any(s.reason == "tag" and s.omitted for d in digests for s in d.sections)
    assert any(
        s.reason == "person" and "replied" in i.why
        for d in digests
        for s in d.sections
        for i in s.items
    )
    assert sum(len(shown(d)) for d in digests) > 100


def test_an_item_deleted_or_hidden_during_a_round_reaches_no_later_chunk(
    client: TestClient, publish: Publish
) -> None:
    """A round reads each window once; what a later chunk would show is checked again."""
    ann, bob, cid, dee = new_id(), new_id(), new_id(), new_id()
    doomed = content(author=dee, tags=("python",), hours_ago=3)
    hidden = content(author=dee, tags=("python",), hours_ago=2, title="To hide")
    kept = content(author=dee, tags=("python",), hours_ago=4)
    publish(
        *(follow(person, "tag", "python") for person in (ann, bob, cid)),
        doomed,
        hidden,
        kept,
    )
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    now = utcnow()
    until = now - timedelta(minutes=1)
    everyone = [Request(person, "weekly", until, None) for person in (ann, bob, cid)]
    windows = Windows(everyone, now=now)
    with Session(engine) as session:
        first = build_digests(session=session, requests=everyone[:1], now=now, windows=windows)
    assert set(shown(first[ann])) == {doomed.content_id, hidden.content_id, kept.content_id}

    publish(
        PostDeleted(
            content_id=doomed.content_id,
            kind="post",
            author_id=dee,
            group_id=None,
            visibility="public",
            version=2,
            deleted_at=utcnow(),
        ),
        hidden.model_copy(update={"version": 2, "hidden": True, "title": None, "tags": []}),
    )
    with Session(engine) as session:
        later = build_digests(session=session, requests=everyone[1:], now=now, windows=windows)
        for person in (bob, cid):
            assert shown(later[person]) == [kept.content_id]
            alone = build_digest(
                session=session, user_id=person, period="weekly", now=now, until=until
            )
            assert later[person].model_dump() == alone.model_dump()


def test_a_round_holds_one_window_at_a_time(client: TestClient, publish: Publish) -> None:
    """People due for different windows are built in chunks of one window each, and the
    last window is let go before the next is read (two at once were a round's peak)."""
    ann, bob, dee = new_id(), new_id(), new_id()
    publish(follow(ann, "user", dee), follow(bob, "user", dee), content(author=dee, hours_ago=3))
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    now = utcnow()
    until = now - timedelta(minutes=1)
    requests = [Request(ann, "weekly", until, None), Request(bob, "daily", until, None)]
    windows = Windows(requests, now=now)
    seen: list[weakref.ref[window.Window]] = []
    load = batch.load_window

    def loading(*args: Any, **kwargs: Any) -> window.Window:
        assert all(earlier() is None for earlier in seen), "the last window is still held"
        loaded = load(*args, **kwargs)
        seen.append(weakref.ref(loaded))
        return loaded

    with pytest.MonkeyPatch.context() as patch, Session(engine) as session:
        patch.setattr(batch, "load_window", loading)
        for request in requests:
            build_digests(session=session, requests=[request], now=now, windows=windows)
    assert len(seen) == 2

    due = [
        DueDigest(user_id=ann, period="weekly", until=until, since=None),
        DueDigest(user_id=bob, period="daily", until=until, since=None),
        DueDigest(user_id=dee, period="daily", until=until, since=None),
    ]
    due.sort(key=lambda d: window_of(request_of(d), now=now))
    chunks = list(chunks_by_window(due, now=now))
    assert [len(chunk) for chunk in chunks] in ([1, 2], [2, 1])
    for chunk in chunks:
        assert len({window_of(request_of(d), now=now) for d in chunk}) == 1
