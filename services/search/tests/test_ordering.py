"""Late, reordered and replayed content events never move a document backwards."""

from collections.abc import Callable

from fastapi.testclient import TestClient

from services.search.tests.conftest import (
    People,
    deleted,
    post,
    search_ids,
    settle_content,
    updated,
)
from shared.ids import new_id


def test_an_older_version_arriving_after_a_newer_one_is_ignored(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    first = post(body="version one text", version=1)
    second = updated(first, version=2, body="version two text")
    settle_content(search_client, me, publish_events, second, first)

    assert search_ids(search_client, me, "two") == [str(first.content_id)]
    assert search_ids(search_client, me, "one") == []


def test_a_delete_before_an_older_upsert_keeps_the_item_deleted(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    first = post(body="tombstone check", version=1)
    settle_content(
        search_client,
        me,
        publish_events,
        deleted(first, version=3),
        updated(first, version=2, body="tombstone check again"),
        first,
    )

    assert search_ids(search_client, me, "tombstone") == []


def test_replaying_the_whole_history_leaves_the_final_state(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    kept = post(body="replayed kept v1")
    kept_v2 = updated(kept, version=2, body="replayed kept v2 final")
    gone = post(body="replayed gone")
    history = [kept, kept_v2, gone, deleted(gone, version=2)]
    settle_content(search_client, me, publish_events, *history)
    settle_content(search_client, me, publish_events, *history)

    assert search_ids(search_client, me, "replayed") == [str(kept.content_id)]
    assert search_ids(search_client, me, "final") == [str(kept.content_id)]
