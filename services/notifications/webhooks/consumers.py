"""The webhook consumer: every event type, public and restricted, into the webhook log."""

from services.notifications.webhooks.service import store_event
from shared.events.consumer import Consumer, projection_consumer
from shared.events.contracts import ALL_EVENTS
from shared.settings import Settings

WEBHOOK_CONSUMER = "notifications-webhooks"


def webhook_consumer(settings: Settings) -> Consumer:
    """One durable consumer over the whole contract; the grant is checked per endpoint.

    It only writes the webhook log and the queue (the sender delivers from there), so a
    fetch goes in one transaction: every event of the platform passes through here.
    """
    return projection_consumer(
        WEBHOOK_CONSUMER,
        dict.fromkeys(ALL_EVENTS, store_event),
        ack_wait_seconds=settings.webhook_consumer_ack_wait_seconds,
    )
