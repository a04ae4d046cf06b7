"""The notifications service: inboxes, live streams, e-mail and webhooks."""

from pathlib import Path

from fastapi import FastAPI

from services.notifications.consumers import notification_consumers
from services.notifications.live_routes import router as live_router
from services.notifications.mail import sender as mail_sender
from services.notifications.mail.models import MAIL_TABLES
from services.notifications.mail.routes import router as mail_router
from services.notifications.models import TABLES
from services.notifications.routes import router
from shared.auth import TokenVerifier
from shared.settings import Settings
from shared.web import ServiceSpec, create_service_app

SPEC = ServiceSpec(
    name="notifications",
    title="Knowflow notifications",
    description=(
        "A person's inbox (mentions, replies, answers, routed questions, digests), "
        "live over Server-Sent Events, by e-mail as they choose; signed webhooks for "
        "other systems."
    ),
    routers=[router, live_router, mail_router],
    tables=[*TABLES, *MAIL_TABLES],
    consumers=notification_consumers,
    on_startup=mail_sender.start,  # the e-mail sender loop
    on_shutdown=mail_sender.stop,
    migrations=Path(__file__).parent / "migrations",
)


def create_app(settings: Settings | None = None, verifier: TokenVerifier | None = None) -> FastAPI:
    return create_service_app(SPEC, settings=settings, verifier=verifier)


app = create_app()
