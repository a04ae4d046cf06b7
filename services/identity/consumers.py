"""Identity's event handlers: the other services' erasure reports, kept for the combined one."""

from collections.abc import Sequence

from sqlmodel import Session

from services.identity import privacy
from shared.events.consumer import Consumer
from shared.events.contracts import ErasureReported
from shared.events.envelope import CloudEvent
from shared.settings import Settings

ERASURE_REPORTS_CONSUMER = "identity-erasure-reports"


def on_erasure_reported(session: Session, _envelope: CloudEvent, data: ErasureReported) -> None:
    privacy.do_record_report(session=session, data=data)


def consumers(_settings: Settings) -> Sequence[Consumer]:
    return [Consumer(ERASURE_REPORTS_CONSUMER, {ErasureReported: on_erasure_reported})]
