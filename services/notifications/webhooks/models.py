"""Webhook tables: endpoints and their grants, the retained event log, the delivery log."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from sqlalchemy import Index, Text
from sqlmodel import JSON, AutoString, Column, Field, SQLModel

from shared.ids import new_id, utcnow


class EndpointBase(SQLModel):
    """What an endpoint's row and its HTTP shape (`EndpointPublic`) share."""

    id: UUID = Field(default_factory=new_id, primary_key=True)
    url: str
    description: str = ""
    event_types: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    restricted_event_types: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    enabled: bool = True
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    # Since when it has failed without a success in between (None: last attempt succeeded).
    failing_since: datetime | None = None
    last_success_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class WebhookEndpoint(EndpointBase, table=True):
    """A system that receives events as signed POSTs, and what it may receive.

    `event_types`: types delivered when an event is public. `restricted_event_types`:
    types delivered when an event is restricted (private content, personal data).
    `group_ids`: if set, restricted events of a group reach the endpoint only for these
    groups. `secret_encrypted` is the signing secret, Fernet-encrypted at rest.
    """

    __tablename__ = "notifications_webhook_endpoint"

    group_ids: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    secret_encrypted: str


class WebhookEvent(SQLModel, table=True):
    """An event as received from the bus, kept for replay until the retention passes."""

    __tablename__ = "notifications_webhook_event"

    event_id: UUID = Field(primary_key=True)
    event_type: str
    audience: str
    group_id: UUID | None = None
    occurred_at: datetime = Field(index=True)  # the CloudEvent `time`
    body: str = Field(sa_column=Column(Text, nullable=False))  # the CloudEvent JSON
    received_at: datetime = Field(default_factory=utcnow, index=True)


DeliveryStatus = Literal["pending", "delivering", "delivered", "failed"]


class DeliveryBase(SQLModel):
    """What a delivery's row and its HTTP shape (`DeliveryPublic`) share."""

    id: UUID = Field(default_factory=new_id, primary_key=True)  # UUIDv7: ordered by time
    endpoint_id: UUID
    event_id: UUID
    event_type: str
    replay: bool = False
    status: DeliveryStatus = Field(default="pending", sa_type=AutoString)
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class WebhookDelivery(DeliveryBase, table=True):
    """One event to one endpoint: pending → delivering (leased) → delivered | failed.

    A replay adds a new row for the same event (same `webhook-id`). `lease` grows with
    every claim, so a sender whose lease expired cannot record over a newer claim.
    """

    __tablename__ = "notifications_webhook_delivery"
    __table_args__ = (
        Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
        Index("ix_webhook_delivery_endpoint", "endpoint_id", "id"),
    )

    next_attempt_at: datetime = Field(default_factory=utcnow)
    claimed_until: datetime | None = None
    lease: int = 0


WEBHOOK_TABLES: list[type[SQLModel]] = [WebhookEndpoint, WebhookEvent, WebhookDelivery]
