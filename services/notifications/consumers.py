"""Notifications' event handlers: contract in, projection or `do_notify`, idempotent."""

from collections.abc import Sequence

from shared.events.consumer import Consumer
from shared.settings import Settings


def notification_consumers(_settings: Settings) -> Sequence[Consumer]:
    """One durable consumer per concern, so a stuck one does not hold up the others."""
    return ()
