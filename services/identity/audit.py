"""Identity's audit log: an append-only, hash-chained record of security-relevant actions.

Each entry's `hash` is SHA-256 over its canonical JSON and the previous entry's hash, so an
edited, removed or reordered entry breaks the chain from there on (`verify_chain`). The
chain head row is locked while appending, so two writers never fork the chain. Every entry
is also exported as an `AuditRecorded` event, in the same transaction.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import Request
from sqlmodel import JSON, Column, Field, Session, SQLModel, col, select

from shared.errors import BadRequest
from shared.events.contracts import AuditActorKind, AuditRecorded
from shared.events.outbox import record_event
from shared.ids import new_id, utcnow
from shared.observability import client_address, request_id_var
from shared.pagination import decode_cursor, paginate

GENESIS_HASH = "0" * 64
SOURCE = "/knowflow/identity"


class AuditEntry(SQLModel, table=True):
    __tablename__ = "identity_audit_entry"

    sequence: int = Field(primary_key=True)
    id: UUID = Field(default_factory=new_id, unique=True)
    actor_id: UUID | None = Field(default=None, index=True)
    actor_kind: str = "user"  # AuditActorKind
    action: str = Field(index=True)
    target: str = Field(index=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    ip: str | None = None
    request_id: str | None = None
    service: str = "identity"
    details: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    previous_hash: str
    hash: str


class AuditHead(SQLModel, table=True):
    """The chain's last sequence and hash: one row, locked by each append."""

    __tablename__ = "identity_audit_head"

    id: int = Field(default=1, primary_key=True)
    sequence: int = 0
    hash: str = GENESIS_HASH


@dataclass(frozen=True)
class Origin:
    """Where a request came from: the client's address (as the gateway saw it) and request id."""

    ip: str | None
    request_id: str | None

    @classmethod
    def of(cls, request: Request | None) -> "Origin":
        if request is None:
            return cls(ip=None, request_id=request_id_var.get())
        return cls(ip=client_address(request), request_id=request_id_var.get())


def canonical(entry: AuditEntry) -> bytes:
    """The bytes an entry's hash covers: every field but the hash, in a fixed form."""
    fields: dict[str, Any] = {
        "sequence": entry.sequence,
        "id": str(entry.id),
        "actor_id": str(entry.actor_id) if entry.actor_id else None,
        "actor_kind": entry.actor_kind,
        "action": entry.action,
        "target": entry.target,
        "at": entry.at.isoformat(),
        "ip": entry.ip,
        "request_id": entry.request_id,
        "service": entry.service,
        "details": entry.details,
        "previous_hash": entry.previous_hash,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def entry_hash(entry: AuditEntry) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def record_audit(
    session: Session,
    *,
    action: str,
    target: str,
    actor_id: UUID | None,
    actor_kind: AuditActorKind = "user",
    origin: Origin | None = None,
    service: str = "identity",
    at: datetime | None = None,
    details: dict[str, str] | None = None,
) -> AuditEntry:
    """Append one entry to the chain in the caller's transaction (which must commit it)."""
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is None:
        head = AuditHead()
    origin = origin or Origin.of(None)
    entry = AuditEntry(
        sequence=head.sequence + 1,
        actor_id=actor_id,
        actor_kind=actor_kind,
        action=action,
        target=target,
        at=at or utcnow(),
        ip=origin.ip,
        request_id=origin.request_id,
        service=service,
        details=dict(details or {}),
        previous_hash=head.hash,
        hash="",
    )
    entry.hash = entry_hash(entry)
    head.sequence, head.hash = entry.sequence, entry.hash
    session.add(head)
    session.add(entry)
    record_event(
        session,
        AuditRecorded(
            sequence=entry.sequence,
            entry_id=entry.id,
            actor_id=entry.actor_id,
            actor_kind=actor_kind,
            action=entry.action,
            target=entry.target,
            at=entry.at,
            ip=entry.ip,
            request_id=entry.request_id,
            service=entry.service,
            details=entry.details,
            previous_hash=entry.previous_hash,
            hash=entry.hash,
        ),
        source=SOURCE,
    )
    return entry


@dataclass(frozen=True)
class ChainBreak:
    sequence: int
    reason: str


def verify_entries(entries: Iterable[AuditEntry]) -> tuple[int, ChainBreak | None]:
    """Walk entries in sequence order: how many verified, and the first break if any."""
    previous = GENESIS_HASH
    expected_sequence = 1
    checked = 0
    for entry in entries:
        if entry.sequence != expected_sequence:
            return checked, ChainBreak(expected_sequence, "entry missing")
        if entry.previous_hash != previous:
            return checked, ChainBreak(entry.sequence, "previous hash does not match")
        if entry_hash(entry) != entry.hash:
            return checked, ChainBreak(entry.sequence, "entry altered")
        previous = entry.hash
        expected_sequence += 1
        checked += 1
    return checked, None


def verify_chain(session: Session) -> tuple[int, ChainBreak | None]:
    entries = session.exec(select(AuditEntry).order_by(col(AuditEntry.sequence))).yield_per(500)
    checked, broken = verify_entries(entries)
    head = session.get(AuditHead, 1)
    if broken is None and head is not None and head.sequence != checked:
        return checked, ChainBreak(checked + 1, "entries after the last one verified are missing")
    return checked, broken


@dataclass(frozen=True)
class AuditFilter:
    """What an admin asks the log for; every field narrows (None: any)."""

    actor_id: UUID | None = None
    action: str | None = None
    target: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


def list_entries(
    session: Session, *, where: AuditFilter, cursor: str | None, limit: int
) -> tuple[list[AuditEntry], str | None]:
    """A page of entries matching `where`, newest first (keyset on the sequence), and the
    next page's cursor; a malformed cursor is a 400."""
    query = select(AuditEntry)
    if where.actor_id is not None:
        query = query.where(AuditEntry.actor_id == where.actor_id)
    if where.action is not None:
        query = query.where(AuditEntry.action == where.action)
    if where.target is not None:
        query = query.where(AuditEntry.target == where.target)
    if where.since is not None:
        query = query.where(col(AuditEntry.at) >= where.since)
    if where.until is not None:
        query = query.where(col(AuditEntry.at) < where.until)
    after = decode_cursor(cursor, 1)
    if after is not None:
        before = after[0]
        if not isinstance(before, int) or isinstance(before, bool):
            raise BadRequest("malformed cursor")
        query = query.where(col(AuditEntry.sequence) < before)
    query = query.order_by(col(AuditEntry.sequence).desc())
    return paginate(session, query, limit=limit, cursor_of=lambda row: [row.sequence])
