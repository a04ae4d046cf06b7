"""The published event contract: the AsyncAPI document is valid AsyncAPI 3.0.0 and says
what `contracts.py` says (every event, every audience, the CloudEvent envelope)."""

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shared.events.asyncapi import REF_PREFIX, build_document, render_page
from shared.events.contracts import ALL_EVENTS, EVENT_TYPES, PostCreated, UserRegistered
from shared.events.envelope import subject_for

REPO = Path(__file__).resolve().parents[2]
FETCH = REPO / "deploy" / "asyncapi" / "fetch-schema.sh"


def _required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("KNOWFLOW_REQUIRE_REAL_BACKENDS") == "1"


@pytest.fixture(scope="module")
def official_schema() -> dict[str, Any]:
    """The official AsyncAPI 3.0.0 JSON Schema, as fetched by deploy/asyncapi/fetch-schema.sh."""
    path = Path(
        subprocess.run(
            ["bash", str(FETCH), "path"], check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    if not path.is_file():
        reason = f"the AsyncAPI 3.0.0 schema is not cached at {path}: run `bash {FETCH}`"
        if _required():
            pytest.fail(reason)
        pytest.skip(reason)
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


def _errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{list(error.path)}: {error.message[:200]}" for error in validator.iter_errors(document)
    ]


def test_the_document_is_valid_asyncapi_3(
    official_schema: dict[str, Any], document: dict[str, Any]
) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert _errors(official_schema, document) == []


@pytest.mark.parametrize(
    "breakage",
    ["receive-or-send", "no-info-version", "channel-without-address-type", "bad-schema"],
)
def test_the_validation_rejects_a_broken_document(
    official_schema: dict[str, Any], document: dict[str, Any], breakage: str
) -> None:
    broken = copy.deepcopy(document)
    if breakage == "receive-or-send":
        next(iter(broken["operations"].values()))["action"] = "publish"  # AsyncAPI 2 wording
    elif breakage == "no-info-version":
        del broken["info"]["version"]
    elif breakage == "channel-without-address-type":
        next(iter(broken["channels"].values()))["address"] = 42
    else:
        broken["components"]["schemas"]["PostCreated"]["required"] = "body"  # not a list
    assert _errors(official_schema, broken) != []


def test_every_event_type_has_a_channel_per_audience_and_a_send_operation(
    document: dict[str, Any],
) -> None:
    addresses = {channel["address"]: channel for channel in document["channels"].values()}
    operations = {op["channel"]["$ref"].rsplit("/", 1)[1] for op in document["operations"].values()}
    assert {op["action"] for op in document["operations"].values()} == {"send"}
    assert operations == set(document["channels"])
    for model in ALL_EVENTS:
        message = document["components"]["messages"][model.__name__]
        assert message["title"] == model.event_type
        channel_ids = [
            cid for cid, ch in document["channels"].items() if model.__name__ in ch["messages"]
        ]
        assert channel_ids, model.event_type
    # A post's audience depends on its group: it is on both channels, and they say why.
    for audience in ("public", "restricted"):
        channel = addresses[subject_for(PostCreated.event_type, audience)]
        assert "depends on its content" in channel["description"]
    # A user registration is always public; a routed question always restricted.
    assert subject_for(UserRegistered.event_type, "public") in addresses
    assert subject_for(UserRegistered.event_type, "restricted") not in addresses
    assert "events.public.question.routed.v1" not in addresses
    assert "events.restricted.question.routed.v1" in addresses


def test_messages_are_cloudevents_whose_data_is_the_model_schema(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    envelope = schemas["PostCreatedEnvelope"]
    assert {"specversion", "id", "source", "type", "data"} <= set(envelope["required"])
    assert envelope["properties"]["type"]["const"] == "knowflow.post.created.v1"
    assert envelope["properties"]["data"] == {"$ref": REF_PREFIX + "PostCreated"}
    assert set(schemas["PostCreated"]["properties"]) == set(PostCreated.model_fields)
    # Docstrings become descriptions; nested models live in components/schemas.
    assert "routing round" in schemas["QuestionRouted"]["description"]
    assert schemas["QuestionRouted"]["properties"]["evidence"]["items"] == {
        "$ref": REF_PREFIX + "RoutedEvidence"
    }


def test_every_reference_resolves_and_no_defs_remain(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    assert "$defs" not in text

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [ref for value in node.values() for ref in refs(value)]
        if isinstance(node, list):
            return [ref for value in node for ref in refs(value)]
        return []

    for ref in refs(document):
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert target, ref


def test_the_examples_are_events_the_models_accept(document: dict[str, Any]) -> None:
    checked = set()
    for message in document["components"]["messages"].values():
        for example in message["examples"]:
            payload = example["payload"]
            EVENT_TYPES[payload["type"]].model_validate(payload["data"])
            checked.add(payload["type"])
    # Every event type has an example, so none passes by having nothing to check.
    assert checked == set(EVENT_TYPES)


def test_the_page_escapes_what_it_shows(document: dict[str, Any]) -> None:
    hostile = copy.deepcopy(document)
    hostile["info"]["description"] = "<script>alert(1)</script>"
    next(iter(hostile["channels"].values()))["description"] = "<img src=x onerror=alert(1)>"
    page = render_page(hostile)
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
