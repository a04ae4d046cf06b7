"""The CloudEvents 1.0 envelope (structured JSON mode) and how a type maps to a subject.

Subjects are `events.<audience>.<entity>.<verb>.<version>`: `public` events may be read
by any system on the bus; `restricted` ones carry private-group content or personal
data and are only for Knowflow's own services (NATS permissions grant other systems
`events.public.>` alone).
"""

from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.ids import UtcDatetime, new_id, utcnow

TYPE_PREFIX = "knowflow."
SUBJECT_ROOT = "events"
DEAD_LETTER_ROOT = "deadletter"
REPLAY_TOKEN = "replay"

Audience = Literal["public", "restricted"]


class EventData(BaseModel):
    """Base of every event payload; subclasses set `event_type` ("knowflow.<entity>.<verb>.vN")."""

    model_config = ConfigDict(frozen=True)

    event_type: ClassVar[str]

    def audience(self) -> Audience:
        return "public"

    def subject_id(self) -> str | None:
        """The entity the event is about (the CloudEvents `subject`)."""
        return None


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope; `traceparent` is the distributed-tracing extension."""

    specversion: Literal["1.0"] = "1.0"
    id: UUID = Field(default_factory=new_id)
    source: str
    type: str
    time: UtcDatetime = Field(default_factory=utcnow)
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    audience: Audience = "public"
    traceparent: str | None = None
    data: dict[str, Any]


def subject_for(event_type: str, audience: Audience) -> str:
    """`knowflow.post.created.v1` published for `public` → `events.public.post.created.v1`."""
    return f"{SUBJECT_ROOT}.{audience}.{event_type.removeprefix(TYPE_PREFIX)}"


def filter_subject_for(event_type: str) -> str:
    """The subject filter matching one event type in every audience."""
    return f"{SUBJECT_ROOT}.*.{event_type.removeprefix(TYPE_PREFIX)}"


def dead_letter_subject(consumer: str) -> str:
    return f"{DEAD_LETTER_ROOT}.{consumer}"


def replay_subject(consumer: str, original_subject: str) -> str:
    """Where a parked message is replayed so that only `consumer` receives it again.

    `events.replay.<consumer>.events.public.post.created.v1` is longer than any event
    subject, so no other consumer's filter (`events.*.post.created.v1`) matches it, and
    it is outside `events.public.>`, so systems outside Knowflow never see it.
    """
    return f"{SUBJECT_ROOT}.{REPLAY_TOKEN}.{consumer}.{original_subject}"


def replay_filter_for(consumer: str) -> str:
    """The subject filter matching every replay addressed to `consumer`."""
    return f"{SUBJECT_ROOT}.{REPLAY_TOKEN}.{consumer}.{SUBJECT_ROOT}.>"


def wrap(data: EventData, *, source: str, traceparent: str | None = None) -> CloudEvent:
    return CloudEvent(
        source=source,
        type=data.event_type,
        subject=data.subject_id(),
        audience=data.audience(),
        traceparent=traceparent,
        data=data.model_dump(mode="json"),
    )
