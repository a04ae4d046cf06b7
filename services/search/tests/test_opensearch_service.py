"""The search service on OpenSearch over real NATS: bulk failures, and rebuilding live."""

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from opensearchpy import OpenSearch

from services.search.main import create_app
from services.search.tests.conftest import (
    Headers,
    People,
    deleted,
    post,
    search_ids,
    settle_content,
    updated,
)
from services.search.tests.fake_posts import FakePosts, serve_fake_posts
from shared.auth import TokenIssuer, TokenVerifier
from shared.events.bus import Bus
from shared.events.envelope import CloudEvent, dead_letter_subject
from shared.ids import new_id
from shared.testing.fixtures import ServiceClientFactory, wait_for
from shared.testing.opensearch import opensearch_prefix
from shared.testing.tcp_proxy import tcp_proxy


@pytest.fixture
def fake_posts(token_issuer: TokenIssuer) -> FakePosts:
    verifier = TokenVerifier(
        issuer="knowflow-identity", audience="knowflow", jwks=token_issuer.jwks()
    )
    return FakePosts(verifier, page_delay=0.25)


@pytest.fixture
def opensearch_client(
    service_client: ServiceClientFactory, fake_posts: FakePosts
) -> Iterator[tuple[TestClient, str, str]]:
    """The service on OpenSearch (3 deliveries before parking), posts faked over HTTP."""
    with (
        opensearch_prefix() as (url, prefix),
        serve_fake_posts(fake_posts) as posts_url,
        service_client(
            create_app,
            name="search",
            search_url=url,
            search_index_prefix=prefix,
            posts_url=posts_url,
            max_deliveries=3,
            semantic_model="off",  # the keyword index's own behaviour (see test_semantic)
        ) as client,
    ):
        yield client, url, prefix


def every_match(client: TestClient, headers: Headers, q: str) -> list[str]:
    """Every page of a search, in order."""
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"q": q, "limit": 100}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/search", params=params, headers=headers).json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


def indexed_ids(os_client: OpenSearch, prefix: str, word: str) -> list[str]:
    """Every live (not deleted) document in the live index whose body has `word`, at once.

    Read from the index itself, not by paging `/search`: pages ordered by relevance can
    shift while segments merge (scores move), which is not what a rebuild test checks.
    """
    os_client.indices.refresh(index=f"{prefix}-content")
    response = os_client.search(
        index=f"{prefix}-content",
        body={
            "query": {
                "bool": {
                    "must": {"match": {"body": word}},
                    "must_not": {"term": {"deleted": True}},
                }
            },
            "size": 10_000,
            "_source": False,
        },
    )
    return [hit["_id"] for hit in response["hits"]["hits"]]


def admin_header(token_issuer: TokenIssuer) -> Headers:
    token = token_issuer.issue(user_id=new_id(), handle="root", is_admin=True)
    return {"Authorization": f"Bearer {token}"}


def test_a_document_the_index_refuses_is_retried_then_dead_lettered_not_dropped(
    opensearch_client: tuple[TestClient, str, str],
    people: People,
    publish_events: Callable[..., None],
    nats_url: str,
) -> None:
    client, _, _ = opensearch_client
    me = people.header(new_id())
    good, other = post(body="batchmate first"), post(body="batchmate second")
    bad = post(body="batchmate refused", tags=["x" * 40_000])
    settle_content(client, me, publish_events, good, bad, other)

    assert set(search_ids(client, me, "batchmate")) == {
        str(good.content_id),
        str(other.content_id),
    }

    async def parked() -> tuple[Any, int]:
        bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="dlq-reader")
        try:
            sub = await bus.js.subscribe(dead_letter_subject("search-content"), durable="dlq")
            message = await sub.next_msg(timeout=20)
            await sub.unsubscribe()
            for _ in range(50):  # the runner acks right after publishing to the dead letter
                info = await bus.js.consumer_info("KNOWFLOW", "search-content")
                if not info.num_ack_pending:
                    break
                await asyncio.sleep(0.1)
            return message, info.num_ack_pending or 0
        finally:
            await bus.close()

    message, unsettled = asyncio.run(parked())
    assert CloudEvent.model_validate_json(message.data).data["content_id"] == str(bad.content_id)
    assert "immense term" in message.headers["Knowflow-Error"]
    assert unsettled == 0
    metrics = client.get("/metrics").text
    assert 'outcome="retry"' in metrics and 'outcome="parked"' in metrics


def test_readiness_reports_the_cluster(opensearch_client: tuple[TestClient, str, str]) -> None:
    client, _, _ = opensearch_client
    body = client.get("/readyz").json()
    assert body["checks"]["search_engine"] == "ok"


def test_a_rebuild_under_live_traffic_answers_every_search_and_loses_nothing(
    opensearch_client: tuple[TestClient, str, str],
    people: People,
    publish_events: Callable[..., None],
    fake_posts: FakePosts,
    token_issuer: TokenIssuer,
) -> None:
    client, url, prefix = opensearch_client
    me = people.header(new_id())
    steady = [post(body=f"steady rebuild item {i}") for i in range(40)]
    churn = [post(body=f"churning rebuild item {i}") for i in range(300)]
    doomed = post(body="doomed rebuild item")
    for item in (*steady, *churn, doomed):
        fake_posts.put(item)
    fake_posts.remove(doomed.content_id)
    settle_content(client, me, publish_events, *steady, *churn, doomed, deleted(doomed, version=2))
    os_client = OpenSearch(hosts=[url])
    (old_index,) = os_client.indices.get_alias(name=f"{prefix}-content")

    stop = threading.Event()
    answers: list[tuple[float, int, int]] = []  # (time, status, steady hits)
    expected_steady = {str(item.content_id) for item in steady}

    def search_continuously() -> None:
        while not stop.is_set():
            response = client.get("/search", params={"q": "steady", "limit": 100}, headers=me)
            hits = [item["id"] for item in response.json().get("items", [])]
            complete = set(hits) == expected_steady and len(hits) == len(expected_steady)
            answers.append((time.monotonic(), response.status_code, int(complete)))

    def write_continuously() -> None:
        step = 0
        while not stop.is_set():
            fresh = post(body=f"churning rebuild fresh {step}")
            target = churn[step]
            change = updated(target, version=2, body=f"churning rebuild updated {step}")
            events: list[Any] = [fresh, change]
            fake_posts.put(fresh)
            fake_posts.put(change)
            if step % 3 == 0:
                victim = churn[-1 - step]
                fake_posts.remove(victim.content_id)
                events.append(deleted(victim, version=2))
            publish_events(*events)
            step += 1
            time.sleep(0.02)

    threads = [
        threading.Thread(target=search_continuously),
        threading.Thread(target=write_continuously),
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        began = time.monotonic()
        response = client.post("/admin/reindex", headers=admin_header(token_issuer))
        ended = time.monotonic()
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["replaced"] == [old_index] and report["tombstones"] >= 1
    assert fake_posts.pages_served >= 4  # the copy took several slow pages
    during = [answer for answer in answers if began <= answer[0] <= ended]
    assert len(during) >= 5
    assert all(status == 200 for _, status, _ in answers)
    assert all(complete for _, _, complete in answers), "a search missed steady items"

    settle_content(client, me, publish_events)
    expected = {str(item_id) for item_id in fake_posts.items}
    seen = indexed_ids(os_client, prefix, "rebuild")
    assert len(seen) == len(set(seen)), "duplicates after the rebuild"
    assert set(seen) == expected
    updated_ids = {
        str(item.content_id) for item in fake_posts.items.values() if "updated" in item.body
    }
    assert set(indexed_ids(os_client, prefix, "updated")) == updated_ids and updated_ids
    assert list(os_client.indices.get_alias(name=f"{prefix}-content")) == [report["index"]]
    assert not os_client.indices.exists(index=old_index)

    # The tombstone came across: the doomed item's late create cannot bring it back.
    settle_content(client, me, publish_events, doomed)
    assert search_ids(client, me, "doomed") == []


@pytest.mark.parametrize("engine_name", ["embedded", "opensearch"])
def test_only_an_admin_may_rebuild_and_the_embedded_engine_says_it_has_no_rebuild(
    search_client: TestClient, people: People, token_issuer: TokenIssuer, engine_name: str
) -> None:
    assert search_client.post("/admin/reindex").status_code == 401
    other = search_client.post("/admin/reindex", headers=people.header(new_id()))
    assert other.status_code == 403
    if engine_name == "embedded":
        response = search_client.post("/admin/reindex", headers=admin_header(token_issuer))
        assert response.status_code == 501
        assert response.headers["content-type"].startswith("application/problem+json")


def test_an_opensearch_outage_pauses_indexing_reports_not_ready_and_loses_nothing(
    service_client: ServiceClientFactory,
    fake_posts: FakePosts,
    people: People,
    publish_events: Callable[..., None],
    nats_url: str,
) -> None:
    with (
        opensearch_prefix() as (url, prefix),
        tcp_proxy("127.0.0.1", urlsplit(url).port or 9200) as proxy,
        serve_fake_posts(fake_posts) as posts_url,
        service_client(
            create_app,
            name="search",
            search_url=f"http://127.0.0.1:{proxy.port}",
            search_index_prefix=prefix,
            posts_url=posts_url,
            max_deliveries=3,
            semantic_model="off",  # the keyword index's own behaviour (see test_semantic)
        ) as client,
    ):
        me = people.header(new_id())
        settle_content(client, me, publish_events, post(body="prelude item"))
        proxy.set_mode("refuse")
        during = [post(body=f"outage item {i}") for i in range(20)]
        publish_events(*during)
        time.sleep(12)  # longer than the old retry budget (about 6 s)
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["consumer:search-content"].startswith("paused")
        assert (
            'knowflow_consumer_paused{consumer="search-content"} 1.0' in client.get("/metrics").text
        )

        async def parked() -> int:
            bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="dlq-reader")
            try:
                info = await bus.js.stream_info(bus.dead_letter_stream)
                return int(info.state.messages)
            finally:
                await bus.close()

        assert asyncio.run(parked()) == 0
        proxy.set_mode("pass")
        expected = {str(item.content_id) for item in during}
        wait_for(lambda: set(every_match(client, me, "outage")) == expected, timeout=60)
        wait_for(lambda: client.get("/readyz").status_code == 200, timeout=10)
        assert asyncio.run(parked()) == 0
