"""Issue 9 end to end: what concerns a person reaches them once, and only if they may see it.

Real processes throughout: NATS, the five services and the gateway, an SMTP server
(aiosmtpd) the notifier sends to, and a webhook receiver that verifies every delivery
with the `standardwebhooks` package. Ada mentions Ben and asks a question that is routed
to him; Ben's inbox and his open live stream show both, each e-mail arrives once even
though the notifier is restarted while it sends, the receiver gets the public events
signed; Olga, outside the private group, gets nothing about it anywhere.
"""

import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.launch import Platform
from services.notifications.tests.mail.conftest import SmtpServer
from services.notifications.tests.webhooks.conftest import Receiver
from shared.natsserver import free_port
from tests.e2e.conftest import create_admin, started_platform
from tests.e2e.test_knowledge_flow import eventually
from tests.gateway.sse_client import EventStream

Json = dict[str, Any]
MENTIONS = 12  # enough e-mails that a restart of the notifier lands while it is sending


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    server = SmtpServer(free_port(), tmp_path_factory.mktemp("smtp"), []).start()
    yield server
    server.stop()


def fast(smtp: SmtpServer) -> dict[str, str]:
    """The notifier sends to the test's SMTP server, and nothing waits long."""
    return {
        "KNOWFLOW_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
        "KNOWFLOW_MAIL_SEND_INTERVAL_SECONDS": "0.2",
        "KNOWFLOW_SSE_HEARTBEAT_SECONDS": "2",
        "KNOWFLOW_WEBHOOK_DISPATCH_TICK_SECONDS": "0.2",
        # Ada writes a lot in a few seconds.
        "KNOWFLOW_RATE_LIMIT_WRITES": '{"limit": 10000, "window": 60}',
    }


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer) -> Iterator[Platform]:
    with started_platform(tmp_path_factory, fast(smtp)) as running:
        yield running


@pytest.fixture(scope="module")
def api(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway_url}/api/v1", timeout=30.0) as client:
        yield client


def register(api: httpx.Client, handle: str) -> Json:
    response = api.post(
        "/auth/register",
        json={
            "handle": handle,
            "email": f"{handle}@example.org",
            "password": "a long password of letters",
            "display_name": handle.title(),
        },
    )
    assert response.status_code == 201, response.text
    body: Json = response.json()
    token = body["access_token"]
    me = api.get("/users/me", headers={"Authorization": f"Bearer {token}"}).json()
    return {"headers": {"Authorization": f"Bearer {token}"}, "token": token, "user": me}


def created(response: httpx.Response) -> Json:
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def inbox(api: httpx.Client, who: Json) -> list[Json]:
    response = api.get("/notifications", params={"limit": 100}, headers=who["headers"])
    assert response.status_code == 200, response.text
    items: list[Json] = response.json()["items"]
    return items


def mail_to(smtp: SmtpServer, address: str) -> list[Any]:
    return [message for message in smtp.messages() if address in str(message["To"])]


def restart(platform: Platform, name: str, environment: dict[str, str]) -> None:
    """Stop a service as a deploy does (SIGTERM), start it again on the same port and data."""
    process = platform.processes[name]
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    platform.start_uvicorn(
        name, f"services.{name}.main", platform.ports.of(name), "127.0.0.1", environment
    )
    platform.wait_ready(name, platform.url(name))


def test_mentions_and_routed_questions_reach_ben_once_and_nothing_private_reaches_olga(
    platform: Platform, api: httpx.Client, smtp: SmtpServer, tmp_path: Path
) -> None:
    admin = create_admin(platform, api, "ada")  # as a deployment makes its first admin
    ada = {"headers": admin["headers"], "token": admin["access_token"], "user": admin["user"]}
    ben, olga = register(api, "ben"), register(api, "olga")

    # A webhook endpoint for public events, and its receiver process.
    port = free_port()
    endpoint = created(
        api.post(
            "/webhooks/endpoints",
            headers=ada["headers"],
            json={"url": f"http://127.0.0.1:{port}/hooks", "description": "e2e"},
        )
    )
    receiver = Receiver(tmp_path / "receiver", endpoint["secret"], port=port)
    receiver.directory.mkdir()
    receiver.start()
    try:
        # A private group Ben belongs to and Olga does not.
        group = created(
            api.post(
                "/groups",
                headers=ada["headers"],
                json={
                    "slug": f"core-{secrets.token_hex(3)}",
                    "name": "Core",
                    "visibility": "private",
                },
            )
        )
        added = api.post(
            f"/groups/{group['id']}/members",
            headers=ada["headers"],
            json={"user_id": ben["user"]["id"]},
        )
        assert added.status_code in (200, 201), added.text
        # Being added notifies Ben. That notification is made from identity's event, so it
        # may come late: wait for it, so his live stream below carries only what the posts
        # after it cause.
        eventually(lambda: any(item["kind"] == "group_added" for item in inbox(api, ben)))

        # Ben knows about #plutus: routing will ask him.
        evidence = created(
            api.post(
                "/posts",
                headers=ben["headers"],
                json={"body": "How I validate Plutus datums in my validator scripts #plutus"},
            )
        )
        eventually(
            lambda: ben["user"]["id"]
            in [
                expert["user_id"]
                for expert in api.get(
                    "/experts", params={"topic": "plutus"}, headers=ada["headers"]
                ).json()["experts"]
            ]
        )

        with (
            EventStream(
                f"{platform.gateway_url}/api/v1/notifications/stream",
                headers={"authorization": f"Bearer {ben['token']}"},
            ) as ben_live,
            EventStream(
                f"{platform.gateway_url}/api/v1/notifications/stream",
                headers={"authorization": f"Bearer {olga['token']}"},
            ) as olga_live,
        ):
            assert ben_live.status == 200 and olga_live.status == 200

            mention = created(
                api.post(
                    "/posts",
                    headers=ada["headers"],
                    json={"body": "@ben can you review the release notes by Friday? #release"},
                )
            )
            question = created(
                api.post(
                    "/questions",
                    headers=ada["headers"],
                    json={
                        "title": "How do I validate a Plutus datum?",
                        "body": "My validator rejects every transaction.",
                        "tags": ["plutus"],
                    },
                )
            )
            secret_post = created(
                api.post(
                    "/posts",
                    headers=ada["headers"],
                    json={
                        "body": "@olga @ben the acquisition closes Monday #confidential",
                        "group_id": group["id"],
                    },
                )
            )

            # Ben's open stream receives the mention, the routed question and the private
            # mention (he is a member); every event is one of his notifications.
            arrived: dict[str, tuple[str, float]] = {}
            started = time.monotonic()
            while len(arrived) < 3:
                event = ben_live.next("notification", timeout=15)
                arrived[event.data["item_id"]] = (event.data["kind"], time.monotonic() - started)
            assert {item: kind for item, (kind, _) in arrived.items()} == {
                mention["id"]: "mention",
                question["id"]: "routed",
                secret_post["id"]: "mention",
            }

            # His inbox shows them too, each saying why it is there.
            kinds = {(item["kind"], item["item_id"]) for item in inbox(api, ben)}
            assert {
                ("mention", mention["id"]),
                ("routed", question["id"]),
                ("mention", secret_post["id"]),
            } <= kinds
            routed = next(item for item in inbox(api, ben) if item["kind"] == "routed")
            assert "plutus" in routed["reason"] and routed["url"].endswith(question["id"])

            # Olga was mentioned only in the private group: nothing reaches her.
            time.sleep(1)
            assert olga_live.drain("notification") == []
        assert inbox(api, olga) == []

        # E-mail: mentions and routed questions come by e-mail by default. More mentions,
        # and the notifier is restarted while it is sending them: each arrives once.
        first_mail = eventually(lambda: mail_to(smtp, "ben@example.org"))
        assert first_mail
        burst = [
            created(
                api.post(
                    "/posts",
                    headers=ada["headers"],
                    json={"body": f"@ben item {index} of the checklist needs you"},
                )
            )["id"]
            for index in range(MENTIONS)
        ]
        eventually(lambda: len(mail_to(smtp, "ben@example.org")) > 3, timeout=30)
        restart(platform, "notifications", fast(smtp))
        expected = 3 + MENTIONS  # mention, routed, private mention, the burst
        eventually(lambda: len(mail_to(smtp, "ben@example.org")) >= expected, timeout=60)
        time.sleep(2)  # anything sent twice would arrive now
        mails = mail_to(smtp, "ben@example.org")
        message_ids = [str(message["Message-ID"]) for message in mails]
        assert len(mails) == expected and len(set(message_ids)) == expected
        for message in mails:
            assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert "unsubscribe?token=" in str(message["List-Unsubscribe"])
        assert len(burst) == MENTIONS
        assert mail_to(smtp, "olga@example.org") == []
        # Nothing of the private post's text travels by e-mail: a notice names and links it.
        assert not any("acquisition" in str(message) for message in smtp.messages())

        # Webhooks: the public events arrived signed (the receiver verified each with
        # standardwebhooks), once in effect; nothing of the private group, nothing personal.
        def delivered() -> set[str]:
            return {line["type"] for line in receiver.verified() if line["status"] == 200}

        eventually(
            lambda: {"knowflow.post.created.v1", "knowflow.question.created.v1"} <= delivered(),
            timeout=30,
        )
        assert receiver.refused() == []
        received = receiver.verified()
        items = {line["data"].get("content_id") for line in received}
        assert {mention["id"], question["id"], evidence["id"]} <= items
        assert secret_post["id"] not in items
        assert not {
            line["type"]
            for line in received
            if line["type"].startswith(("knowflow.notification.", "knowflow.question.routed"))
        }
    finally:
        receiver.kill()
