"""Identity's event handlers: the other services' erasure reports, kept for the combined one,
and their security-relevant actions, chained into the audit log.

Idempotent: the consumer runner records each event as processed in the transaction that
applies it, so a redelivery appends nothing.
"""

from collections.abc import Sequence

from sqlmodel import Session

from services.identity import privacy
from services.identity.audit import Origin, record_audit
from shared.events.consumer import Consumer
from shared.events.contracts import AuditReported, ErasureReported
from shared.events.envelope import CloudEvent
from shared.settings import Settings

ERASURE_REPORTS_CONSUMER = "identity-erasure-reports"
AUDIT_CONSUMER = "identity-audit"


def on_erasure_reported(session: Session, _envelope: CloudEvent, data: ErasureReported) -> None:
    privacy.do_record_report(session=session, data=data)


def on_audit_reported(session: Session, envelope: CloudEvent, data: AuditReported) -> None:
    """Chain another service's entry; its source names the service (`/knowflow/posts`)."""
    record_audit(
        session,
        action=data.action,
        target=data.target,
        actor_id=data.actor_id,
        actor_kind=data.actor_kind,
        origin=Origin(ip=data.ip, request_id=data.request_id),
        service=envelope.source.rsplit("/", 1)[-1] or "unknown",
        at=data.at,
        details=data.details,
    )


def consumers(_settings: Settings) -> Sequence[Consumer]:
    """The durable consumers the identity service runs."""
    return [
        Consumer(ERASURE_REPORTS_CONSUMER, {ErasureReported: on_erasure_reported}),
        Consumer(AUDIT_CONSUMER, {AuditReported: on_audit_reported}),
    ]
