"""The notifications service: inboxes, live streams, e-mail and webhooks."""

from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI

from services.notifications import privacy
from services.notifications.consumers import notification_consumers
from services.notifications.live_routes import router as live_router
from services.notifications.mail import sender as mail_sender
from services.notifications.mail.models import MAIL_TABLES
from services.notifications.mail.routes import router as mail_router
from services.notifications.models import TABLES
from services.notifications.privacy_routes import router as privacy_router
from services.notifications.routes import router
from services.notifications.webhooks.consumers import webhook_consumer
from services.notifications.webhooks.delivery import start_webhooks, stop_webhooks
from services.notifications.webhooks.models import WEBHOOK_TABLES
from services.notifications.webhooks.routes import router as webhooks_router
from shared.auth import TokenVerifier
from shared.events.consumer import Consumer
from shared.events.erasure import erasure_consumer
from shared.settings import Settings
from shared.web import ServiceSpec, create_service_app


def all_consumers(settings: Settings) -> Sequence[Consumer]:
    return [
        *notification_consumers(settings),
        webhook_consumer(settings),
        erasure_consumer("notifications", privacy.erase),
    ]


async def on_startup(app: FastAPI) -> None:
    """The loops every replica runs: the e-mail sender and the webhook dispatcher."""
    await mail_sender.start(app)
    await start_webhooks(app)


async def on_shutdown(app: FastAPI) -> None:
    await stop_webhooks(app)
    await mail_sender.stop(app)


SPEC = ServiceSpec(
    name="notifications",
    title="Knowflow notifications",
    description=(
        "A person's inbox (mentions, replies, answers, routed questions, digests), "
        "live over Server-Sent Events, by e-mail as they choose; signed webhooks for "
        "other systems."
    ),
    routers=[router, live_router, mail_router, webhooks_router, privacy_router],
    tables=[*TABLES, *MAIL_TABLES, *WEBHOOK_TABLES],
    consumers=all_consumers,
    on_startup=on_startup,
    on_shutdown=on_shutdown,
    migrations=Path(__file__).parent / "migrations",
)


def create_app(settings: Settings | None = None, verifier: TokenVerifier | None = None) -> FastAPI:
    return create_service_app(SPEC, settings=settings, verifier=verifier)


app = create_app()
