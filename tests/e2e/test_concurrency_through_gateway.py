"""ETag and If-Match survive the gateway both ways, and its merged OpenAPI declares them."""

from typing import Any

import httpx

from deploy.launch import Platform


def test_a_stale_if_match_through_the_gateway_is_412(gateway: httpx.Client) -> None:
    account: dict[str, Any] = gateway.post(
        "/auth/register",
        json={
            "handle": "etagger",
            "email": "etagger@example.org",
            "password": "a long password",
            "display_name": "E",
        },
    ).json()
    auth = {"Authorization": f"Bearer {account['access_token']}"}
    post = gateway.post("/posts", json={"body": "first"}, headers=auth).json()
    read = gateway.get(f"/posts/{post['id']}", headers=auth)
    stale = read.headers["etag"]
    edited = gateway.patch(
        f"/posts/{post['id']}", json={"body": "second"}, headers={**auth, "If-Match": stale}
    )
    assert edited.status_code == 200 and edited.headers["etag"] != stale
    refused = gateway.patch(
        f"/posts/{post['id']}", json={"body": "third"}, headers={**auth, "If-Match": stale}
    )
    assert refused.status_code == 412
    assert refused.headers["content-type"] == "application/problem+json"
    me = gateway.get("/users/me", headers=auth)
    refused_profile = gateway.patch(
        "/users/me", json={"bio": "x"}, headers={**auth, "If-Match": '"not-the-etag"'}
    )
    assert me.headers["etag"] and refused_profile.status_code == 412


def test_the_merged_openapi_declares_if_match_and_412(platform: Platform) -> None:
    spec = httpx.get(f"{platform.gateway_url}/openapi.json", timeout=30).json()
    for path in ("/api/v1/posts/{post_id}", "/api/v1/articles/{article_id}", "/api/v1/users/me"):
        patch = spec["paths"][path]["patch"]
        assert "412" in patch["responses"]
        assert "If-Match" in {parameter["name"] for parameter in patch["parameters"]}
        assert "ETag" in spec["paths"][path]["get"]["responses"]["200"]["headers"]
