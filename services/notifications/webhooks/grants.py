"""What an endpoint may receive: the subscribable event types and the grant check.

An event type's audience may depend on the event (a post is public, or restricted when
it is private), so a type is subscribable as public, as restricted, or both. The check
is the only place deciding whether an event reaches an endpoint; it runs when delivery
rows are written (live and replay), so a delivery never exists without its grant.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal
from uuid import UUID

from shared.events.contracts import ALL_EVENTS
from shared.events.envelope import Audience, EventData

TypeAudience = Literal["public", "restricted", "public_or_restricted"]


def _audiences(model: type[EventData]) -> set[Audience]:
    """Every audience an event of `model` can have, tried on its visibility values."""
    found: set[Audience] = set()
    for visibility in ("public", "open", "private"):
        probe = model.model_construct(visibility=visibility)
        try:
            found.add(probe.audience())
        except AttributeError:  # an audience decided by other fields: assume restricted
            found.add("restricted")
    return found


@cache
def type_audiences() -> dict[str, TypeAudience]:
    """Each event type of the contract and whether it is public, restricted or either."""
    catalog: dict[str, TypeAudience] = {}
    for model in ALL_EVENTS:
        audiences = _audiences(model)
        if audiences == {"public"}:
            catalog[model.event_type] = "public"
        elif audiences == {"restricted"}:
            catalog[model.event_type] = "restricted"
        else:
            catalog[model.event_type] = "public_or_restricted"
    return catalog


def public_types() -> list[str]:
    """Types that can be delivered as public events: an endpoint's default subscription."""
    return [name for name, audience in type_audiences().items() if audience != "restricted"]


def restricted_types() -> list[str]:
    return [name for name, audience in type_audiences().items() if audience != "public"]


def check_types(event_types: Iterable[str], *, restricted: bool) -> list[str]:
    """The problems with a requested subscription (empty: fine)."""
    allowed = set(restricted_types() if restricted else public_types())
    problems = []
    for name in event_types:
        if name not in type_audiences():
            problems.append(f"unknown event type {name!r}")
        elif name not in allowed:
            where = "restricted_event_types" if not restricted else "event_types"
            problems.append(
                f"{name!r} is never {'restricted' if restricted else 'public'}; list it in {where}"
            )
    return problems


@dataclass(frozen=True)
class Grant:
    """What one endpoint may receive (the stored lists, as sets)."""

    event_types: frozenset[str]
    restricted_event_types: frozenset[str]
    group_ids: frozenset[UUID] | None

    @classmethod
    def of(
        cls,
        event_types: Sequence[str],
        restricted_event_types: Sequence[str],
        group_ids: Sequence[str] | None,
    ) -> "Grant":
        groups = None if group_ids is None else frozenset(UUID(group) for group in group_ids)
        return cls(frozenset(event_types), frozenset(restricted_event_types), groups)

    def covers(self, *, event_type: str, audience: str, group_id: UUID | None) -> bool:
        """Whether an event may reach the endpoint; anything not public needs the grant."""
        if audience == "public":
            return event_type in self.event_types
        if event_type not in self.restricted_event_types:
            return False
        if group_id is not None and self.group_ids is not None:
            return group_id in self.group_ids
        return True
