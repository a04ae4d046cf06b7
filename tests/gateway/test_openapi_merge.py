"""The merged OpenAPI document, with the real identity service among the upstreams."""

from pathlib import Path

import httpx

from gateway.main import create_app
from gateway.tests.conftest import gateway_settings, serve
from gateway.tests.test_health_and_openapi import collect_refs, posts_app, search_app


def test_merged_openapi_prefixes_paths_renames_clashes_and_marks_security(
    tmp_path: Path, identity_url: str
) -> None:
    with serve(posts_app()) as posts, serve(search_app()) as search:
        urls = {"identity": identity_url, "posts": posts, "search": search}
        with serve(create_app(gateway_settings(tmp_path, urls))) as url:
            response = httpx.get(url + "/openapi.json", timeout=10)
            docs = httpx.get(url + "/docs")
    assert response.status_code == 200
    assert response.headers["x-openapi-missing"] == "digests,notifications"
    document = response.json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    assert "/api/v1/auth/jwks" in paths
    assert {"/api/v1/users/me", "/api/v1/posts/{post_id}", "/api/v1/search"} <= paths.keys()
    assert all(path.startswith("/api/v1/") for path in paths)
    schemas = document["components"]["schemas"]
    assert "PostsUserPublic" in schemas and "UserPublic" in schemas
    assert schemas["PostsUserPublic"]["properties"].keys() == {"nickname"}
    assert schemas["PostPublic"]["properties"]["author"]["$ref"].endswith("/PostsUserPublic")
    for ref in collect_refs(document):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "security" not in paths["/api/v1/auth/register"]["post"]
    assert "security" not in paths["/api/v1/auth/jwks"]["get"]
    assert paths["/api/v1/users/me"]["get"]["security"] == [{"bearerAuth": []}]
    operation_ids = [
        operation["operationId"] for item in paths.values() for operation in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))
    assert docs.status_code == 200 and "/openapi.json" in docs.text
