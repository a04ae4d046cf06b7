"""The test receiver's own check can fail: a wrong signature or a changed body is refused."""

import socket
from collections.abc import Callable
from datetime import timedelta

import httpx
from standardwebhooks import Webhook

from services.notifications.tests.webhooks.conftest import Receiver
from services.notifications.webhooks.secrets import new_secret
from shared.ids import utcnow
from shared.testing.fixtures import wait_for

BODY = '{"specversion":"1.0","id":"e1","type":"knowflow.user.registered.v1","data":{}}'


def post(
    receiver: Receiver, secret: str, body: str, *, message_id: str = "e1", age: float = 0
) -> int:
    now = utcnow() - timedelta(seconds=age)
    headers = {
        "content-type": "application/cloudevents+json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign("e1", now, BODY),  # signed as e1
    }
    return httpx.post(receiver.url, content=body, headers=headers).status_code


def test_the_receiver_accepts_only_what_its_secret_signed(
    receivers: Callable[[str], Receiver],
) -> None:
    secret = new_secret()
    receiver = receivers(secret)
    assert post(receiver, new_secret(), BODY) == 401  # someone else's secret
    assert post(receiver, secret, BODY.replace("e1", "e2")) == 401  # body changed after signing
    assert post(receiver, secret, BODY, message_id="other") == 401  # sent as another id
    assert post(receiver, secret, BODY, age=600) == 401  # too old: replayed later
    assert receiver.accepted_ids() == [] and len(receiver.refused()) == 4
    assert post(receiver, secret, BODY) == 200
    assert receiver.accepted_ids() == ["e1"]


def test_a_request_cut_off_mid_body_is_neither_refused_nor_accepted(
    receivers: Callable[[str], Receiver],
) -> None:
    receiver = receivers(new_secret())
    with socket.create_connection(("127.0.0.1", receiver.port)) as connection:
        head = (
            f"POST / HTTP/1.1\r\nHost: x\r\nwebhook-id: cut\r\nContent-Length: {len(BODY)}\r\n\r\n"
        )
        connection.sendall(head.encode() + BODY[:10].encode())
    wait_for(lambda: receiver.cut_off() == [f"cut 10/{len(BODY)}"])
    assert receiver.refused() == [] and receiver.accepted_ids() == []
