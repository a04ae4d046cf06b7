"""Gateway endpoints: health, readiness, metrics, and the merged OpenAPI document."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from gateway.main import create_app
from gateway.openapi import merge_openapi
from gateway.routing import RouteTable
from gateway.tests.conftest import EchoUpstream, gateway_settings, serve


def test_healthz_answers_without_upstreams(tmp_path: Path) -> None:
    with serve(create_app(gateway_settings(tmp_path, {}))) as url:
        response = httpx.get(url + "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_503_problem_naming_the_down_upstream(gateway_url: str) -> None:
    response = httpx.get(gateway_url + "/readyz", timeout=10)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    checks = response.json()["checks"]
    assert checks["digests"].startswith("unavailable")
    assert {checks[name] for name in ("identity", "posts", "search")} == {"ok"}


def test_readyz_is_200_when_every_upstream_is_ready(tmp_path: Path) -> None:
    upstream = EchoUpstream("any")
    with serve(upstream) as up:
        names = ("identity", "posts", "search", "digests", "notifications", "web")
        urls = dict.fromkeys(names, up)
        with serve(create_app(gateway_settings(tmp_path, urls))) as url:
            response = httpx.get(url + "/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


def test_metrics_count_requests_by_route_prefix_and_status(tmp_path: Path) -> None:
    settings = gateway_settings(tmp_path, {}, metrics_token="s3cret")
    with serve(create_app(settings)) as url:
        httpx.get(url + "/api/v1/posts/42")
        text = httpx.get(url + "/metrics", headers={"Authorization": "Bearer s3cret"}).text
    assert 'knowflow_gateway_requests_total{route="/api/v1/posts",status="401"}' in text
    assert "knowflow_gateway_request_duration_seconds_bucket" in text


class UserPublic(BaseModel):
    """Deliberately not identity's UserPublic: the merge must rename one."""

    nickname: str


class PostPublic(BaseModel):
    title: str
    author: UserPublic


def posts_app() -> FastAPI:
    app = FastAPI(title="posts")

    @app.get("/posts/{post_id}")
    def read_post(post_id: int) -> PostPublic:
        return PostPublic(title=str(post_id), author=UserPublic(nickname="x"))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def search_app() -> FastAPI:
    app = FastAPI(title="search")

    @app.get("/search")
    def search(q: str) -> list[str]:
        return [q]

    return app


def collect_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from collect_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from collect_refs(item)


def test_merge_renames_schemas_that_refer_to_renamed_ones() -> None:
    ref = {"$ref": "#/components/schemas/Inner"}
    first = {
        "paths": {"/posts": {"get": {"operationId": "list"}}},
        "components": {"schemas": {"Inner": {"type": "string"}, "Outer": {"items": ref}}},
    }
    second = {
        "paths": {"/search": {"get": {"operationId": "list", "responses": {"200": ref}}}},
        "components": {"schemas": {"Inner": {"type": "integer"}, "Outer": {"items": ref}}},
    }
    merged = merge_openapi({"posts": first, "search": second}, RouteTable())
    schemas = merged["components"]["schemas"]
    assert set(schemas) == {"Inner", "Outer", "SearchInner", "SearchOuter"}
    assert schemas["SearchOuter"]["items"]["$ref"] == "#/components/schemas/SearchInner"
    search_get = merged["paths"]["/api/v1/search"]["get"]
    assert search_get["responses"]["200"]["$ref"] == "#/components/schemas/SearchInner"
    assert search_get["operationId"] == "search_list"
