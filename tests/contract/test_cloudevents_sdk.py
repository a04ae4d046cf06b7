"""Real events parse with the official CloudEvents SDK (`cloudevents`, JSON event format):
rows of a service's outbox after real writes, and the messages on the JetStream stream."""

import asyncio
import json
from collections.abc import Callable

import nats
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.formats.json import JSONFormat
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.posts.main import create_app
from shared.events.envelope import CloudEvent
from shared.events.outbox import OutboxMessage
from shared.ids import new_id
from shared.natsserver import free_port
from shared.testing.fixtures import ServiceClientFactory, wait_for


def _parse(payload: str | bytes) -> BaseCloudEvent:
    return JSONFormat().read(None, payload)


def _assert_same(parsed: BaseCloudEvent, ours: CloudEvent) -> None:
    assert parsed.get_specversion() == "1.0"
    assert parsed.get_id() == str(ours.id)
    assert parsed.get_type() == ours.type
    assert parsed.get_source() == ours.source
    assert parsed.get_subject() == ours.subject
    assert parsed.get_time() == ours.time
    assert parsed.get_datacontenttype() == "application/json"
    assert parsed.get_extension("audience") == ours.audience
    assert parsed.get_data() == ours.data


def _write_some_content(client: TestClient, headers: dict[str, str]) -> None:
    post = client.post("/posts", json={"body": "Deadline friday @ben #release"}, headers=headers)
    assert post.status_code == 201, post.text
    post_id = post.json()["id"]
    reply = client.post("/posts", json={"body": "noted", "parent_id": post_id}, headers=headers)
    assert reply.status_code == 201, reply.text
    etag = client.get(f"/posts/{post_id}", headers=headers).headers["etag"]
    changed = client.patch(
        f"/posts/{post_id}",
        json={"body": "Deadline monday @ben #release"},
        headers={**headers, "If-Match": etag},
    )
    assert changed.status_code == 200, changed.text
    question = {"title": "How do we cut a release?", "body": "Steps please", "tags": ["release"]}
    assert client.post("/questions", json=question, headers=headers).status_code == 201


def _outbox(client: TestClient) -> list[OutboxMessage]:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at))))


async def _read_stream(nats_url: str, count: int) -> list[tuple[str, dict[str, str], bytes]]:
    connection = await nats.connect(nats_url)
    try:
        js = connection.jetstream()
        subscription = await js.pull_subscribe("events.>", stream="KNOWFLOW")
        messages = await subscription.fetch(count, timeout=5)
        return [(m.subject, dict(m.headers or {}), m.data) for m in messages]
    finally:
        await connection.close()


def test_outbox_rows_and_stream_messages_parse_as_cloudevents(
    service_client: ServiceClientFactory,
    nats_url: str,
    auth_header: Callable[..., dict[str, str]],
) -> None:
    identity = f"http://127.0.0.1:{free_port()}"  # unreachable: the projection decides
    with service_client(create_app, name="posts", identity_url=identity) as client:
        _write_some_content(client, auth_header(new_id(), "ada"))
        rows = _outbox(client)
        assert {json.loads(row.payload)["type"] for row in rows} >= {
            "knowflow.post.created.v1",
            "knowflow.post.updated.v1",
            "knowflow.question.created.v1",
        }
        ours: dict[str, CloudEvent] = {}
        for row in rows:
            envelope = CloudEvent.model_validate_json(row.payload)
            _assert_same(_parse(row.payload), envelope)
            ours[str(envelope.id)] = envelope
        wait_for(lambda: all(row.sent_at for row in _outbox(client)))

    on_stream: list[tuple[str, dict[str, str], bytes]] = asyncio.run(
        _read_stream(nats_url, len(rows))
    )
    assert len(on_stream) == len(rows)
    for subject, headers, body in on_stream:
        parsed = _parse(body)
        assert headers["Nats-Msg-Id"] == parsed.get_id()
        envelope = ours[parsed.get_id()]
        assert subject == f"events.{envelope.audience}.{envelope.type.removeprefix('knowflow.')}"
        _assert_same(parsed, envelope)
    assert {subject for subject, _, _ in on_stream} == {row.subject for row in rows}
