"""A member removed from a private group loses access in posts, every time.

Through the real platform (NATS, identity, posts, gateway as processes): add a member,
let them read, remove them, and they must end up refused, however the events and
identity's answers interleave. Before memberships carried identity's own version, posts
stamped identity's answer with its own clock and about 1 in 3 removals was ignored for good.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from tests.e2e.conftest import gateway, platform  # noqa: F401  (module-scoped fixtures)
from tests.e2e.test_knowledge_flow import Json, register

ITERATIONS = 30
READERS = 3
CONVERGE_SECONDS = 10.0


def settles_on(check: Callable[[], int], expected: int) -> int:
    """Poll until `check` answers `expected` (or time runs out); the last answer."""
    deadline = time.monotonic() + CONVERGE_SECONDS
    status = check()
    while status != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        status = check()
    return status


@contextmanager
def reading_meanwhile(read: Callable[[], int]) -> Iterator[None]:
    """Keep the member reading while membership changes, as a client polling a page would."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            read()

    readers = [threading.Thread(target=loop, daemon=True) for _ in range(READERS)]
    for reader in readers:
        reader.start()
    try:
        yield
    finally:
        stop.set()
        for reader in readers:
            reader.join()


def test_a_removed_member_cannot_read_or_reply_in_a_private_group(
    gateway: httpx.Client,  # noqa: F811
) -> None:
    owner, member = register(gateway, "race_owner"), register(gateway, "race_member")
    group = gateway.post(
        "/groups",
        headers=owner["headers"],
        json={"name": "Race", "slug": "race-circle", "visibility": "private"},
    )
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    post = gateway.post(
        "/posts", headers=owner["headers"], json={"body": "members only", "group_id": group_id}
    )
    assert post.status_code == 201, post.text
    post_id = post.json()["id"]

    def read(account: Json) -> int:
        return gateway.get(f"/posts/{post_id}", headers=account["headers"]).status_code

    def reply(account: Json) -> int:
        response = gateway.post(
            "/posts", headers=account["headers"], json={"body": "me too", "parent_id": post_id}
        )
        return response.status_code

    for iteration in range(ITERATIONS):
        with reading_meanwhile(lambda: read(member)):
            added = gateway.post(
                f"/groups/{group_id}/members",
                headers=owner["headers"],
                json={"user_id": member["user"]["id"]},
            )
            assert added.status_code == 201, added.text
            removed = gateway.delete(
                f"/groups/{group_id}/members/{member['user']['id']}", headers=owner["headers"]
            )
            assert removed.status_code == 204, removed.text
        assert settles_on(lambda: read(member), 404) == 404, (
            f"iteration {iteration}: the removed member still reads"
        )
        assert reply(member) == 404, f"iteration {iteration}: the removed member still replies"
        assert read(owner) == 200
