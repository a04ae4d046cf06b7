"""`StrictQuery`: a query parameter the endpoint does not declare is a 422, not ignored."""

from typing import Annotated

from fastapi import Depends, FastAPI, Query
from fastapi.testclient import TestClient

from shared.query import StrictQuery
from shared.web import install_problem_handlers


def paging(cursor: Annotated[str | None, Query()] = None) -> str | None:
    return cursor


def app() -> FastAPI:
    application = FastAPI()
    install_problem_handlers(application)

    @application.get("/strict", dependencies=[StrictQuery])
    def strict(
        tag: str | None = None,
        page: Annotated[str | None, Depends(paging)] = None,
        sort_by: Annotated[str, Query(alias="sort")] = "newest",
    ) -> dict[str, str | None]:
        return {"tag": tag, "page": page, "sort": sort_by}

    @application.get("/lenient")
    def lenient(tag: str | None = None) -> dict[str, str | None]:
        return {"tag": tag}

    return application


def test_declared_parameters_including_dependencies_and_aliases_pass() -> None:
    client = TestClient(app())
    response = client.get("/strict", params={"tag": "ops", "cursor": "c", "sort": "votes"})
    assert response.status_code == 200
    assert response.json() == {"tag": "ops", "page": "c", "sort": "votes"}


def test_each_unknown_parameter_is_named_in_a_422_problem() -> None:
    client = TestClient(app())
    response = client.get("/strict", params={"tga": "ops", "sort_by": "x", "tag": "ok"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["loc"] for error in response.json()["errors"]] == [
        ["query", "sort_by"],
        ["query", "tga"],
    ]


def test_routes_without_it_still_ignore_unknown_parameters() -> None:
    client = TestClient(app())
    assert client.get("/lenient", params={"tga": "ops"}).status_code == 200
