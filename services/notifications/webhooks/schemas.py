"""Webhook requests and answers."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import (
    AfterValidator,
    AnyUrl,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
)

from services.notifications.webhooks.grants import TypeAudience
from services.notifications.webhooks.models import DeliveryBase, EndpointBase
from shared.events.contracts import EVENT_TYPES

MAX_TYPES = 100
MAX_GROUPS = 100


def _known_type(name: str) -> str:
    if name not in EVENT_TYPES:
        raise ValueError(f"unknown event type {name!r}")
    return name


def _text(value: object) -> object:
    # Pydantic would read a number as a Unix time; the schema says an RFC 3339 string.
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string with an offset")
    return value


# A type of the contract (`GET /webhooks/event-types`); which list it may go in is a 400.
EventTypeName = Annotated[
    str, AfterValidator(_known_type), Field(json_schema_extra={"enum": sorted(EVENT_TYPES)})
]
Since = Annotated[AwareDatetime, BeforeValidator(_text)]


def _check_url(url: AnyUrl) -> AnyUrl:
    if url.scheme not in ("http", "https"):
        raise ValueError("the URL must be http or https")
    if url.username or url.password:
        raise ValueError("the URL must not carry credentials")
    if url.fragment:
        raise ValueError("the URL must not have a fragment")
    if not url.host:
        raise ValueError("the URL must name a host")
    return url


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: AnyUrl = Field(description="Where events are POSTed (http or https, no credentials).")
    description: str = Field(default="", max_length=500)
    event_types: list[EventTypeName] | None = Field(
        default=None,
        max_length=MAX_TYPES,
        description="Types delivered when public; default: every type that can be public.",
    )
    restricted_event_types: list[EventTypeName] = Field(
        default_factory=list,
        max_length=MAX_TYPES,
        description="Types delivered when restricted (private content, personal data).",
    )
    group_ids: list[UUID] | None = Field(
        default=None,
        max_length=MAX_GROUPS,
        description="If set, restricted events of a group only for these groups.",
    )

    _url = field_validator("url")(_check_url)


class EndpointUpdate(BaseModel):
    """Only the fields given change; `group_ids: null` lifts the group restriction."""

    model_config = ConfigDict(extra="forbid")

    url: AnyUrl | None = None
    description: str | None = Field(default=None, max_length=500)
    event_types: list[EventTypeName] | None = Field(default=None, max_length=MAX_TYPES)
    restricted_event_types: list[EventTypeName] | None = Field(default=None, max_length=MAX_TYPES)
    group_ids: list[UUID] | None = Field(default=None, max_length=MAX_GROUPS)
    enabled: StrictBool | None = Field(
        default=None, description="`true` re-enables a disabled one."
    )

    @field_validator("url")
    @classmethod
    def _valid_url(cls, url: AnyUrl | None) -> AnyUrl | None:
        return None if url is None else _check_url(url)


class EndpointPublic(EndpointBase):
    # Every field is always in the answer (the defaults are the table's): all required.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)  # type: ignore[assignment]

    group_ids: list[UUID] | None


class EndpointCreated(EndpointPublic):
    secret: str = Field(description="Signing secret (`whsec_...`); shown only now.")


class SecretRotated(BaseModel):
    id: UUID
    secret: str = Field(description="The new signing secret; the old one stops signing now.")


class EventTypePublic(BaseModel):
    type: str
    audience: TypeAudience
    description: str


class DeliveryPublic(DeliveryBase):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)  # type: ignore[assignment]

    event_id: UUID = Field(description="Also the `webhook-id` header: dedupe on it.")
    next_attempt_at: datetime | None


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: Since = Field(description="Deliver again every matching event from this time.")


class ReplayQueued(BaseModel):
    queued: int
