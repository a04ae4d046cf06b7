"""Events reach real receiver processes signed, once in effect, and only as granted."""

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.notifications.tests.webhooks.conftest import (
    Notifier,
    Receiver,
    deliveries,
    post,
    register,
    user_registered,
)
from services.notifications.webhooks.consumers import WEBHOOK_CONSUMER
from shared.events.consumer import ProcessedEvent
from shared.events.contracts import QuestionRouted, UserContactUpdated
from shared.events.outbox import OutboxMessage
from shared.ids import new_id, utcnow
from shared.testing.fixtures import wait_for


def consumed(client: TestClient) -> int:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        query = select(ProcessedEvent).where(ProcessedEvent.consumer == WEBHOOK_CONSUMER)
        return len(session.exec(query).all())


def consumed_ids(client: TestClient) -> set[str]:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        query = select(ProcessedEvent.event_id).where(ProcessedEvent.consumer == WEBHOOK_CONSUMER)
        return set(session.exec(query).all())


def settled(client: TestClient, admin: dict[str, str], endpoint_id: str) -> bool:
    rows = deliveries(client, admin, endpoint_id)
    return all(row["status"] in ("delivered", "failed") for row in rows)


def test_public_events_arrive_verified_and_restricted_ones_only_where_granted(
    notifier: Notifier,
    receivers: Callable[[str], Receiver],
    publish: Callable[..., list[str]],
    admin: dict[str, str],
) -> None:
    granted_group, other_group = new_id(), new_id()
    with notifier() as client:
        open_endpoint = register(client, admin, "http://127.0.0.1:1/placeholder")
        granted_endpoint = register(
            client,
            admin,
            "http://127.0.0.1:1/placeholder",
            restricted_event_types=["knowflow.post.created.v1", "knowflow.question.routed.v1"],
            group_ids=[str(granted_group)],
        )
        open_receiver = receivers(open_endpoint["secret"])
        granted_receiver = receivers(granted_endpoint["secret"])
        for endpoint, receiver in (
            (open_endpoint, open_receiver),
            (granted_endpoint, granted_receiver),
        ):
            response = client.patch(
                f"/webhooks/endpoints/{endpoint['id']}", headers=admin, json={"url": receiver.url}
            )
            assert response.status_code == 200, response.text

        public = publish(user_registered(), post(), post(group_id=other_group))  # open group
        private_granted = publish(post(group_id=granted_group, private=True))
        private_other = publish(post(group_id=other_group, private=True))
        personal = publish(
            UserContactUpdated(user_id=new_id(), email="ada@example.org", changed_at=utcnow())
        )
        routed = publish(
            QuestionRouted(
                question_id=new_id(),
                title="Keys?",
                user_id=new_id(),
                asker_id=new_id(),
                round=1,
                reason="you wrote about keys",
                evidence=[],
                group_id=None,
                visibility="public",
            )
        )
        # Generous bounds: seven events through consumer, dispatcher and two receivers can take
        # over 10 s on a loaded two-core machine (seen in CI).
        # Every event published here was taken (the notifier's own `notification.created` for
        # the routed question comes too: a count of seven would race with it).
        published = {*public, *private_granted, *private_other, *personal, *routed}
        wait_for(lambda: published <= consumed_ids(client), timeout=30)
        wait_for(lambda: settled(client, admin, open_endpoint["id"]), timeout=30)
        wait_for(lambda: settled(client, admin, granted_endpoint["id"]), timeout=30)

        assert sorted(open_receiver.accepted_ids()) == sorted(public)
        assert sorted(granted_receiver.accepted_ids()) == sorted(
            [*public, *private_granted, *routed]
        )
        for leaked in (*private_other, *personal):
            assert leaked not in open_receiver.accepted_ids() + granted_receiver.accepted_ids()
        assert not open_receiver.refused() and not granted_receiver.refused()
        first = open_receiver.verified()[0]
        assert first["content_type"] == "application/cloudevents+json"
        log = deliveries(client, admin, open_endpoint["id"])
        assert {row["status"] for row in log} == {"delivered"}
        assert all(row["attempts"] == 1 and row["last_status_code"] == 200 for row in log)


def test_events_arrive_once_in_effect_across_receiver_outage_and_sender_restart(
    notifier: Notifier,
    receivers: Callable[[str], Receiver],
    publish: Callable[..., list[str]],
    admin: dict[str, str],
) -> None:
    with notifier() as client:
        endpoint = register(client, admin, "http://127.0.0.1:1/placeholder")
        receiver = receivers(endpoint["secret"])
        client.patch(
            f"/webhooks/endpoints/{endpoint['id']}", headers=admin, json={"url": receiver.url}
        )
        receiver.answer(503)
        early = publish(*(user_registered(f"early{n}") for n in range(3)))
        # The receiver answers 503, then is gone entirely: attempts keep failing.
        wait_for(lambda: len(receiver.verified()) >= 3)
        receiver.kill()
        while_down = publish(*(user_registered(f"down{n}") for n in range(3)))
        wait_for(
            lambda: all(row["attempts"] >= 2 for row in deliveries(client, admin, endpoint["id"]))
            and len(deliveries(client, admin, endpoint["id"])) == 6
        )
        log = deliveries(client, admin, endpoint["id"])
        assert {row["status"] for row in log} <= {"pending", "delivering"}
        # Answered 503 while up, then no answer at all: the log says why each attempt failed.
        assert all(line["status"] == 503 for line in receiver.verified())
        assert all(row["last_status_code"] is None for row in log)
        assert all(row["last_error"].startswith("ConnectError") for row in log), log
    # The sender is stopped; the receiver comes back; the sender restarts mid-stream.
    receiver.answer(200)
    receiver.start()
    with notifier() as client:
        stream = publish(*(user_registered(f"stream{n}") for n in range(20)))
        wait_for(lambda: len(receiver.accepted_ids()) >= 3)
    with notifier() as client:
        wait_for(lambda: set(receiver.accepted_ids()) == {*early, *while_down, *stream}, timeout=20)
        log = deliveries(client, admin, endpoint["id"])
        assert len(log) == 26
        wait_for(lambda: settled(client, admin, endpoint["id"]))
        assert max(row["attempts"] for row in deliveries(client, admin, endpoint["id"])) >= 3
    assert not receiver.refused()


def test_persistent_failure_disables_the_endpoint_and_replay_resends_since_a_time(
    notifier: Notifier,
    receivers: Callable[[str], Receiver],
    publish: Callable[..., list[str]],
    admin: dict[str, str],
) -> None:
    fast_failure = {"webhook_retry_schedule": [0.05, 0.05], "webhook_disable_after_seconds": 1.0}
    with notifier(**fast_failure) as client:
        endpoint = register(client, admin, "http://127.0.0.1:1/placeholder")
        receiver = receivers(endpoint["secret"])
        path = f"/webhooks/endpoints/{endpoint['id']}"
        client.patch(path, headers=admin, json={"url": receiver.url})
        receiver.answer(500)
        before = publish(user_registered("before"))
        # Its attempts are spent well before the endpoint has failed for long: `failed`.
        wait_for(lambda: deliveries(client, admin, endpoint["id"], status="failed"))
        failed = deliveries(client, admin, endpoint["id"], status="failed")[0]
        assert failed["attempts"] == 3 and failed["last_status_code"] == 500
        assert failed["last_error"].startswith("HTTP 500")
        assert client.get(path, headers=admin).json()["enabled"] is True
        time.sleep(1.0)  # the endpoint keeps failing past `webhook_disable_after_seconds`
        still_failing = publish(user_registered("still failing"))
        wait_for(lambda: not client.get(path, headers=admin).json()["enabled"])
        state = client.get(path, headers=admin).json()
        assert state["disabled_reason"].startswith("no successful delivery since")
        with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
            recorded = session.exec(
                select(OutboxMessage).where(
                    col(OutboxMessage.subject).endswith("webhook.endpoint_disabled.v1")
                )
            ).all()
        assert len(recorded) == 1 and endpoint["id"] in recorded[0].payload

        # Disabled: new events are not queued for it, and a replay is refused.
        middle = utcnow()
        after = publish(user_registered("after"))
        wait_for(lambda: consumed(client) == 4)  # with the endpoint_disabled event itself
        assert (
            client.post(
                f"{path}/replay", headers=admin, json={"since": middle.isoformat()}
            ).status_code
            == 409
        )

        receiver.answer(200)
        assert client.patch(path, headers=admin, json={"enabled": True}).json()["enabled"] is True
        response = client.post(f"{path}/replay", headers=admin, json={"since": middle.isoformat()})
        assert response.status_code == 202, response.text
        assert response.json() == {"queued": 1}
        # Re-enabled, the kept delivery of the event that disabled it resumes too.
        wait_for(lambda: sorted(receiver.accepted_ids()) == sorted([*after, *still_failing]))
        everything = (middle - timedelta(minutes=1)).isoformat()
        response = client.post(f"{path}/replay", headers=admin, json={"since": everything})
        assert response.json() == {"queued": 3}
        wait_for(
            lambda: sorted(receiver.accepted_ids())
            == sorted([*still_failing, *after, *before, *still_failing, *after])
        )

        # The receiver has answered; the dispatcher records the outcome just after.
        def replayed() -> list[dict[str, Any]]:
            return [row for row in deliveries(client, admin, endpoint["id"]) if row["replay"]]

        wait_for(lambda: {row["status"] for row in replayed()} == {"delivered"})
        assert len(replayed()) == 4
