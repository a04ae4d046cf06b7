"""Delete on request (GDPR), the part every service shares: consume `UserErasureRequested`,
run the service's own removal, and answer with one `ErasureReported` of what it removed.

The removal and its report are written in the runner's transaction with the processed-event
record, so a redelivered request removes nothing twice and reports once.
"""

from collections.abc import Callable

from sqlmodel import Session

from shared.events.consumer import Consumer
from shared.events.contracts import ErasureReported, UserErasureRequested
from shared.events.envelope import CloudEvent
from shared.events.outbox import record_event
from shared.ids import utcnow

# What a service's removal returns: how many of each kind it removed or anonymised.
Erase = Callable[[Session, UserErasureRequested], dict[str, int]]


def erasure_consumer(service: str, erase: Erase) -> Consumer:
    """The durable consumer `<service>-erasure`: `erase`, then report what it removed."""

    def on_erasure(session: Session, _envelope: CloudEvent, data: UserErasureRequested) -> None:
        removed = erase(session, data)
        record_event(
            session,
            ErasureReported(
                erasure_id=data.erasure_id,
                user_id=data.user_id,
                service=service,
                removed={kind: count for kind, count in removed.items() if count},
                reported_at=utcnow(),
            ),
            source=f"/knowflow/{service}",
        )

    return Consumer(f"{service}-erasure", {UserErasureRequested: on_erasure})
