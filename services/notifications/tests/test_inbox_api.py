"""The inbox API: paging, grouping, read state, and who may read what."""

from collections.abc import Callable

from fastapi.testclient import TestClient

from services.notifications.tests.factories import content, inbox, person, unread
from shared.events.contracts import AnswerCreated, QuestionCreated
from shared.ids import new_id

Publish = Callable[..., None]
AuthHeader = Callable[..., dict[str, str]]


def test_pages_go_newest_first_without_gaps_or_repeats_and_filters_apply(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    ada, ada_registered = person("ada")
    ben, ben_registered = person("ben")
    posts = [content(author=ada, mentions=("ben",)) for _ in range(5)]
    publish(ada_registered, ben_registered, *posts)
    headers = auth_header(ben)

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/notifications", headers=headers, params=params).json()
        seen += [item["item_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(post.content_id) for post in reversed(posts)]
    assert len(inbox(client, headers, kind="mention")) == 5
    assert inbox(client, headers, kind="answer") == []


def test_unknown_or_bad_query_parameters_are_problems(
    client: TestClient, auth_header: AuthHeader
) -> None:
    headers = auth_header()
    for params in ({"unred": "true"}, {"kind": "nonsense"}, {"limit": 0}):
        response = client.get("/notifications", headers=headers, params=params)
        assert response.status_code == 422, params
        assert response.headers["content-type"].startswith("application/problem+json")
    bad_cursor = client.get("/notifications", headers=headers, params={"cursor": "!!"})
    assert bad_cursor.status_code == 400
    bad_group_cursor = client.get("/notifications/grouped", headers=headers, params={"cursor": "x"})
    assert bad_group_cursor.status_code == 400


def test_answers_on_one_question_are_grouped_with_a_summary(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    ada, ada_registered = person("ada")
    ben, ben_registered = person("ben")
    question_id = new_id()
    question = content(
        author=ada,
        model=QuestionCreated,
        kind="question",
        content_id=question_id,
        thread_id=question_id,
        title="Why Plutus?",
    )
    answers = [
        content(author=ben, model=AnswerCreated, kind="answer", parent_id=question_id)
        for _ in range(3)
    ]
    mention = content(author=ben, mentions=("ada",), title="Later")
    publish(ada_registered, ben_registered, question, *answers, mention)
    headers = auth_header(ada)
    client.post(
        f"/notifications/{inbox(client, headers, kind='answer')[0]['id']}/read", headers=headers
    )

    first = client.get("/notifications/grouped", headers=headers, params={"limit": 1}).json()
    assert first["items"][0]["kind"] == "mention"
    rest = client.get(
        "/notifications/grouped", headers=headers, params={"cursor": first["next_cursor"]}
    ).json()
    [group] = rest["items"]
    assert rest["next_cursor"] is None
    assert (group["count"], group["unread_count"]) == (3, 2)
    assert group["title"] == "3 new answers on “Why Plutus?”"
    assert group["url"] == f"/api/v1/questions/{question_id}"
    assert group["latest"]["item_id"] == str(answers[-1].content_id)


def test_read_unread_and_read_all_limited_to_what_a_page_showed(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    ada, ada_registered = person("ada")
    ben, ben_registered = person("ben")
    first, second, third = (content(author=ada, mentions=("ben",)) for _ in range(3))
    publish(ada_registered, ben_registered, first, second)
    headers = auth_header(ben)
    shown = inbox(client, headers)
    publish(third)
    assert unread(client, headers) == 3

    one = client.post(f"/notifications/{shown[0]['id']}/read", headers=headers).json()
    assert one["read"] is True and one["read_at"] is not None
    assert unread(client, headers) == 2
    assert (
        client.post(f"/notifications/{shown[0]['id']}/unread", headers=headers).json()["read"]
        is False
    )
    marked = client.post(
        "/notifications/read-all", headers=headers, json={"before": shown[0]["created_at"]}
    ).json()
    assert marked == {"marked": 2}
    assert [item["item_id"] for item in inbox(client, headers, unread=True)] == [
        str(third.content_id)
    ]
    for before in ("2026-01-01T00:00", 0):  # no offset; a bare number
        refused = client.post("/notifications/read-all", headers=headers, json={"before": before})
        assert refused.status_code == 422, before


def test_no_token_is_401_and_someone_elses_notification_is_404(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    ada, ada_registered = person("ada")
    ben, ben_registered = person("ben")
    publish(ada_registered, ben_registered, content(author=ada, mentions=("ben",)))
    [item] = inbox(client, auth_header(ben))
    for method, path in (
        ("GET", "/notifications"),
        ("GET", "/notifications/grouped"),
        ("GET", "/notifications/unread-count"),
        ("GET", "/notifications/preferences"),
        ("POST", "/notifications/read-all"),
        ("GET", f"/notifications/{item['id']}"),
    ):
        assert client.request(method, path).status_code == 401, path
    for method, path in (
        ("GET", f"/notifications/{item['id']}"),
        ("POST", f"/notifications/{item['id']}/read"),
        ("POST", f"/notifications/{item['id']}/unread"),
    ):
        response = client.request(method, path, headers=auth_header(ada))
        assert response.status_code == 404, path
    assert inbox(client, auth_header(ben))[0]["read"] is False
    assert client.post("/notifications/read-all", headers=auth_header(ada)).json() == {"marked": 0}
