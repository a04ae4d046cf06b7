"""The gateway serves the event contract without a token: JSON and a readable page."""

from pathlib import Path

import httpx

from gateway.main import create_app
from gateway.tests.conftest import gateway_settings, serve
from shared.events.contracts import ALL_EVENTS


def test_asyncapi_json_is_served_without_a_token(tmp_path: Path) -> None:
    with serve(create_app(gateway_settings(tmp_path, {}))) as url:
        response = httpx.get(url + "/asyncapi.json")
        again = httpx.get(url + "/asyncapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "Knowflow events"
    assert set(document["components"]["messages"]) == {model.__name__ for model in ALL_EVENTS}
    assert again.content == response.content


def test_the_asyncapi_page_lists_every_channel_without_scripts(tmp_path: Path) -> None:
    with serve(create_app(gateway_settings(tmp_path, {}))) as url:
        page = httpx.get(url + "/asyncapi")
        document = httpx.get(url + "/asyncapi.json").json()
        post = httpx.post(url + "/asyncapi")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    text = page.text
    assert "<script" not in text
    assert "src=" not in text and "<link" not in text  # nothing loaded from anywhere
    for channel in document["channels"].values():
        assert f"<code>{channel['address']}</code>" in text
    assert "<code>evidence</code>" in text  # the fields of each message's data
    assert post.status_code == 405
