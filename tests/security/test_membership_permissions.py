"""Randomized permissions with removals: posts, search and digests agree with identity.

Through the real platform (NATS, the five services, the gateway as processes), a seeded
random sequence of joins, removals, posts and reads in one private group, by several
people. After each step, identity's member list is the truth, and every projection must
come to agree with it: a member reads every group post in posts, finds them in search and
gets them in their digest (except their own); anyone else gets 404 and finds nothing.
"""

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from tests.e2e.conftest import every_item, gateway, platform  # noqa: F401  (module-scoped fixtures)
from tests.e2e.test_knowledge_flow import Json, register

SEED = 20261202
STEPS = 30
MAX_POSTS = 6  # every post stays within one digest section
CONVERGE_SECONDS = 20.0
TAG = "permtest"


@dataclass
class World:
    gateway: httpx.Client
    owner: Json
    people: list[Json]
    group_id: str
    members: set[str] = field(default_factory=set)  # user ids, the owner included
    posts: dict[str, str] = field(default_factory=dict)  # post id -> author id

    def user_id(self, account: Json) -> str:
        user_id: str = account["user"]["id"]
        return user_id

    def everyone(self) -> list[Json]:
        return [self.owner, *self.people]


def identity_members(world: World) -> set[str]:
    """The truth: who identity says belongs to the group."""
    members = every_item(world.gateway, f"/groups/{world.group_id}/members", world.owner["headers"])
    return {member["user_id"] for member in members}


def what_each_sees(world: World, account: Json) -> dict[str, object]:
    """What one person gets from posts, search and digests about the group's posts."""
    reads = {
        post_id: world.gateway.get(f"/posts/{post_id}", headers=account["headers"]).status_code
        for post_id in world.posts
    }
    found = world.gateway.get("/search", params={"q": TAG, "limit": 50}, headers=account["headers"])
    assert found.status_code == 200, found.text
    digest = world.gateway.get(
        "/digests/me", params={"period": "daily"}, headers=account["headers"]
    )
    assert digest.status_code == 200, digest.text
    in_digest = {
        item["content_id"] for section in digest.json()["sections"] for item in section["items"]
    }
    return {
        "posts": reads,
        "search": {item["id"] for item in found.json()["items"]} & set(world.posts),
        "digest": in_digest & set(world.posts),
    }


def what_each_should_see(world: World, account: Json) -> dict[str, object]:
    user_id = world.user_id(account)
    member = user_id in world.members
    group_posts = set(world.posts) if member else set()
    return {
        "posts": {post_id: 200 if member else 404 for post_id in world.posts},
        "search": group_posts,
        "digest": {post_id for post_id in group_posts if world.posts[post_id] != user_id},
    }


def check_everyone_agrees(world: World, step: str) -> None:
    assert identity_members(world) == world.members, step
    deadline = time.monotonic() + CONVERGE_SECONDS
    for account in world.everyone():
        expected = what_each_should_see(world, account)
        seen = what_each_sees(world, account)
        while seen != expected and time.monotonic() < deadline:
            time.sleep(0.2)
            seen = what_each_sees(world, account)
        assert seen == expected, f"{step}: {account['user']['handle']} sees {seen}"


def step_add(world: World, rng: random.Random) -> str | None:
    outside = [p for p in world.people if world.user_id(p) not in world.members]
    if not outside:
        return None
    person = rng.choice(outside)
    response = world.gateway.post(
        f"/groups/{world.group_id}/members",
        headers=world.owner["headers"],
        json={"user_id": world.user_id(person)},
    )
    assert response.status_code == 201, response.text
    world.members.add(world.user_id(person))
    return f"add {person['user']['handle']}"


def step_remove(world: World, rng: random.Random) -> str | None:
    inside = [p for p in world.people if world.user_id(p) in world.members]
    if not inside:
        return None
    person = rng.choice(inside)
    # Half the time they leave by themselves, else the owner removes them.
    remover = person if rng.random() < 0.5 else world.owner
    response = world.gateway.delete(
        f"/groups/{world.group_id}/members/{world.user_id(person)}", headers=remover["headers"]
    )
    assert response.status_code == 204, response.text
    world.members.discard(world.user_id(person))
    return f"remove {person['user']['handle']}"


def step_post(world: World, rng: random.Random) -> str | None:
    if len(world.posts) >= MAX_POSTS:
        return None
    author = rng.choice([a for a in world.everyone() if world.user_id(a) in world.members])
    response = world.gateway.post(
        "/posts",
        headers=author["headers"],
        json={"body": f"#{TAG} note {len(world.posts)}", "group_id": world.group_id},
    )
    assert response.status_code == 201, response.text
    world.posts[response.json()["id"]] = world.user_id(author)
    return f"post by {author['user']['handle']}"


def step_outsider_tries(world: World, rng: random.Random) -> str | None:
    """Someone outside tries to post or reply in the group: always refused."""
    outside = [p for p in world.people if world.user_id(p) not in world.members]
    if not outside:
        return None
    person = rng.choice(outside)
    body: Json = {"body": f"#{TAG} let me in", "group_id": world.group_id}
    if world.posts and rng.random() < 0.5:
        body = {"body": f"#{TAG} me too", "parent_id": rng.choice(sorted(world.posts))}
    response = world.gateway.post("/posts", headers=person["headers"], json=body)
    assert response.status_code == 404, response.text
    return f"{person['user']['handle']} tries to write"


STEP_KINDS: list[Callable[[World, random.Random], str | None]] = [
    step_add,
    step_remove,
    step_post,
    step_outsider_tries,
]


def test_projections_agree_with_identity_through_random_joins_removals_and_posts(
    gateway: httpx.Client,  # noqa: F811
) -> None:
    rng = random.Random(SEED)
    owner = register(gateway, "perm_owner")
    people = [register(gateway, f"perm_{name}") for name in ("ann", "ben", "cyd")]
    for account in (owner, *people):
        followed = gateway.post(
            "/follows", headers=account["headers"], json={"target_type": "tag", "target": TAG}
        )
        assert followed.status_code == 201, followed.text
    group = gateway.post(
        "/groups",
        headers=owner["headers"],
        json={"name": "Permissions", "slug": "perm-circle", "visibility": "private"},
    )
    assert group.status_code == 201, group.text
    world = World(gateway, owner, people, group.json()["id"], members={owner["user"]["id"]})

    done: list[str] = []
    while len(done) < STEPS:
        step = rng.choice(STEP_KINDS)(world, rng)
        if step is None:
            continue
        done.append(step)
        check_everyone_agrees(world, f"step {len(done)} ({'; '.join(done[-3:])})")
    kinds = {step.split()[0] for step in done}
    assert {"add", "remove", "post"} <= kinds  # the seed exercises removals, not only joins
