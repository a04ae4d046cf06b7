"""Hostile or malformed input is a 4xx problem (or a plain search), never a 5xx."""

from collections.abc import Callable

import httpx
from fastapi.testclient import TestClient

from services.search.tests.conftest import People, post, settle_content
from shared.ids import new_id

FTS_SYNTAX = [
    '"',
    'a"b',
    "*",
    "x*",
    "NEAR(",
    "NEAR(a b",
    "-",
    "-x",
    "a OR",
    "AND",
    "NOT",
    "(((",
    "title:x",
    "^x",
    "{a b}",
    "+",
    "a:b:c",
    "'; DROP TABLE search_fts; --",
    "\x00",
    "😀",
    "é",
]
NOTHING_TO_SEARCH = ["", "   ", '""', "***", "-", "()", "!!!", "_"]


def assert_problem(response: httpx.Response, *, statuses: range = range(400, 500)) -> None:
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == response.status_code


def test_fts_syntax_in_queries_is_searched_literally_or_refused(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    near = post(body="near the edge, and or not")
    settle_content(search_client, me, publish_events, near)

    for path, name in (("/search", "q"), ("/experts", "topic")):
        for text in FTS_SYNTAX:
            response = search_client.get(path, params={name: text}, headers=me)
            assert response.status_code < 500, (path, text, response.text)
            if response.status_code >= 400:
                assert_problem(response)
        for text in NOTHING_TO_SEARCH:
            assert_problem(search_client.get(path, params={name: text}, headers=me))
        # /search needs `q`; /experts takes `topic`, or `q` and/or `tag`: none is a 400.
        missing = range(422, 423) if path == "/search" else range(400, 401)
        assert_problem(search_client.get(path, headers=me), statuses=missing)
        too_long = search_client.get(path, params={name: "a" * 201}, headers=me)
        assert_problem(too_long, statuses=range(422, 423))

    found = search_client.get("/search", params={"q": "NEAR(edge"}, headers=me).json()
    assert [item["id"] for item in found["items"]] == [str(near.content_id)]
    found = search_client.get("/search", params={"q": "and OR not"}, headers=me).json()
    assert [item["id"] for item in found["items"]] == [str(near.content_id)]


def test_bad_parameters_are_4xx_problems(search_client: TestClient, people: People) -> None:
    me = people.header(new_id())
    bad: list[dict[str, str | int]] = [
        {"limit": 0},
        {"limit": 101},
        {"limit": "lots"},
        {"cursor": "%%%"},
        {"cursor": "bm90IGpzb24"},
        {"cursor": "WyJhIiwiYiJd"},  # ["a","b"]: right shape, wrong types
        {
            "cursor": "WzEuMCwxMTgwNTkxNjIwNzE3NDExMzAzNDI0XQ"
        },  # [1.0, 2**70]: an integer SQLite cannot bind
        {"cursor": "W0luZmluaXR5LDFd"},  # [Infinity, 1]
        {"cursor": "W05hTiwxXQ"},  # [NaN, 1]
        # Valid dates that leave the datetime range once converted to UTC.
        {"since": "0001-01-01T00:00:00+01:00"},
        {"until": "9999-12-31T23:30:00-05:00"},
        {"since": "0001-01-01T00:30:00+01:00", "until": "2026-01-01T00:00:00"},
        {"since": "2026-01-01T00:00:00", "until": "2025-01-01T00:00:00+02:00"},
        {"kind": "tweet"},
        {"author_id": "not-a-uuid"},
        {"group_id": "1"},
        {"since": "yesterday"},
        {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"tag": "t" * 51},
    ]
    for params in bad:
        response = search_client.get("/search", params={"q": "x", **params}, headers=me)
        assert_problem(response)
    for limit in (0, 101, "x"):
        response = search_client.get("/experts", params={"topic": "x", "limit": limit}, headers=me)
        assert_problem(response)
    extra = search_client.get("/search", params={"q": "x", "unknown": "1"}, headers=me)
    assert extra.status_code == 200
