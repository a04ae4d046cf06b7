"""Content search through HTTP, fed over real NATS: matching, ranking, filters, paging."""

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient

from services.search.tests.conftest import (
    People,
    answer_to,
    article,
    comment_on,
    deleted,
    joined,
    post,
    question,
    reply,
    search_ids,
    search_items,
    settle_content,
    updated,
)
from shared.ids import new_id, utcnow
from shared.testing.fixtures import wait_for


def test_search_finds_posts_and_articles_with_highlighted_escaped_snippets(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    note = post(
        title="Pods", body="How do pods talk to each other in Kubernetes <script>x</script>"
    )
    guide = article(title="Kubernetes guide", body="Everything about kubernetes clusters")
    settle_content(search_client, me, publish_events, note, guide)

    items = {item["id"]: item for item in search_items(search_client, me, "kubernetes")}

    assert set(items) == {str(note.content_id), str(guide.content_id)}
    assert items[str(guide.content_id)]["kind"] == "article"
    snippet = items[str(note.content_id)]["snippet"]
    assert "<mark>Kubernetes</mark>" in snippet
    assert "&lt;script&gt;" in snippet and "<script>" not in snippet
    assert items[str(note.content_id)]["visibility"] == "public"
    assert items[str(note.content_id)]["score"] > 0


def test_stemmed_words_match_and_items_matching_more_terms_rank_first(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    both = post(body="deploying services with helm charts")
    one = post(body="deploying by hand")
    settle_content(search_client, me, publish_events, both, one)

    assert search_ids(search_client, me, "deploy helm") == [
        str(both.content_id),
        str(one.content_id),
    ]
    assert set(search_ids(search_client, me, "deployed")) == {
        str(both.content_id),
        str(one.content_id),
    }


def test_a_plain_language_question_finds_the_thread_that_answers_it(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    thread = post(
        title="Pods restarting in CrashLoopBackOff",
        body="Our kubernetes pods restart every few minutes after the upgrade",
    )
    answer = reply(thread=thread, body="Check the liveness probe: it kills slow pods")
    unrelated = post(title="Lunch", body="Where do we go for lunch on Friday?")
    settle_content(search_client, me, publish_events, thread, answer, unrelated)

    found = search_ids(search_client, me, "Why do my Kubernetes pods keep restarting?")

    assert found[:2] == [str(thread.content_id), str(answer.content_id)]
    assert str(unrelated.content_id) not in found


def test_a_rarer_matching_word_ranks_above_a_common_one(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    common = [post(body=f"notes about the cluster number {i}") for i in range(6)]
    rare = post(body="notes about the etcd quorum")
    settle_content(search_client, me, publish_events, *common, rare)

    assert search_ids(search_client, me, "cluster etcd")[0] == str(rare.content_id)


def test_questions_answers_and_comments_are_searchable_by_kind(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    asked = question(title="Staking rewards", body="When are staking rewards paid?")
    answered = answer_to(asked, body="Staking rewards are paid each epoch")
    remark = comment_on(asked, body="Staking rewards also depend on the pool")
    settle_content(search_client, me, publish_events, asked, answered, remark)

    def kinds(kind: str) -> list[str]:
        return search_ids(search_client, me, "staking rewards", kind=kind)

    assert kinds("question") == [str(asked.content_id)]
    assert kinds("answer") == [str(answered.content_id)]
    assert kinds("comment") == [str(remark.content_id)]
    assert search_items(search_client, me, "staking rewards")[0]["kind"] == "question"


def test_a_match_in_the_title_ranks_above_a_match_in_the_body(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    in_body = post(title="Weekly notes", body="We talked about observability and lunch plans")
    in_title = post(title="Observability", body="We talked about tracing and lunch plans today")
    settle_content(search_client, me, publish_events, in_body, in_title)

    assert search_ids(search_client, me, "observability") == [
        str(in_title.content_id),
        str(in_body.content_id),
    ]


def test_filters_by_kind_tag_author_group_and_date(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me_id, author, group = new_id(), new_id(), new_id()
    me = people.header(me_id)
    old = utcnow() - timedelta(days=30)
    root = post(body="graphql schema design", tags=["API"], author_id=author, created_at=old)
    answer = reply(thread=root, body="graphql federation helps")
    guide = article(title="GraphQL", body="graphql in depth", tags=["api", "guide"])
    grouped = post(body="graphql in our team", group_id=group)
    publish_events(joined(group, me_id))
    settle_content(search_client, me, publish_events, root, answer, guide, grouped)
    wait_for(lambda: str(grouped.content_id) in search_ids(search_client, me, "graphql"))

    def ids(**params: object) -> set[str]:
        return set(search_ids(search_client, me, "graphql", **params))

    assert ids(kind="reply") == {str(answer.content_id)}
    assert ids(kind="article") == {str(guide.content_id)}
    assert ids(tag="api") == {str(root.content_id), str(guide.content_id)}
    assert ids(tag="#API") == {str(root.content_id), str(guide.content_id)}
    assert ids(author_id=str(author)) == {str(root.content_id)}
    assert ids(group_id=str(group)) == {str(grouped.content_id)}
    recent = (utcnow() - timedelta(days=1)).isoformat()
    assert str(root.content_id) not in ids(since=recent)
    assert ids(until=recent) == {str(root.content_id)}


def test_pagination_returns_every_match_exactly_once(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    posts = [post(body="paging " + "word " * (i % 5)) for i in range(23)]
    settle_content(search_client, me, publish_events, *posts)

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"q": "paging", "limit": 5, **({"cursor": cursor} if cursor else {})}
        body = search_client.get("/search", params=params, headers=me).json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert len(body["items"]) == 5

    assert pages == 5
    assert sorted(seen) == sorted(str(item.content_id) for item in posts)


def test_an_update_replaces_the_text_and_a_delete_removes_the_item(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    original = post(title="Draft", body="alpha release notes")
    settle_content(search_client, me, publish_events, original)
    assert search_ids(search_client, me, "alpha") == [str(original.content_id)]

    settle_content(
        search_client, me, publish_events, updated(original, version=2, body="beta release notes")
    )
    assert search_ids(search_client, me, "alpha") == []
    assert search_ids(search_client, me, "beta") == [str(original.content_id)]

    settle_content(search_client, me, publish_events, deleted(original, version=3))
    assert search_ids(search_client, me, "beta") == []
    assert search_ids(search_client, me, "release") == []


def test_a_hidden_item_leaves_the_index_and_comes_back_when_shown(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    original = post(body="gamma rollout notes")
    settle_content(search_client, me, publish_events, original)
    assert search_ids(search_client, me, "gamma") == [str(original.content_id)]

    # The flag decides, not the text (posts sends none, but a consumer must not rely on it).
    hidden = updated(original, version=2, hidden=True)
    settle_content(search_client, me, publish_events, hidden)
    assert search_ids(search_client, me, "gamma") == []

    shown = updated(original, version=3, body="gamma rollout notes", hidden=False)
    settle_content(search_client, me, publish_events, shown)
    assert search_ids(search_client, me, "gamma") == [str(original.content_id)]
