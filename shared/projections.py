"""Facts another service owns, kept in a local projection: a fact applies only if it is newer.

The owner numbers the facts about one thing (a membership, say) with a version that only
grows, and sends it with each fact (in events and in its HTTP answers). A receiver keeps the
version of what it stored and applies a fact only if its version is higher: an older or
equal one is a replay or a late delivery and changes nothing. Clocks are never compared
across services, so a fact stamped by a receiver cannot outrank one its owner recorded later.

Version 0 marks a fact recorded before its owner numbered them (an event already on the
stream when versions arrived): between two of those, the later time wins, as it did before.
Any numbered fact outranks an unnumbered one.
"""

from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, or_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, SQLModel

UNVERSIONED = 0


def newer_fact(
    *, stored: Any, incoming: Any, version: str = "version", at: str = "changed_at"
) -> ColumnElement[bool]:
    """SQL: the incoming row's fact is newer than the stored row's (see the module's rule)."""
    return cast(
        ColumnElement[bool],
        or_(
            incoming[version] > stored[version],
            and_(
                incoming[version] == UNVERSIONED,
                stored[version] == UNVERSIONED,
                incoming[at] >= stored[at],
            ),
        ),
    )


def do_apply_fact(
    *,
    session: Session,
    model: type[SQLModel],
    keys: list[str],
    values: dict[str, Any],
    version: str = "version",
    at: str = "changed_at",
) -> bool:
    """Insert the fact's row, or overwrite the stored one only if the fact is newer; race-free.

    One statement (INSERT ... ON CONFLICT DO UPDATE ... WHERE), so two writers of the same
    row (a consumer and a request) cannot both read the old version and both win.
    Returns whether the fact was applied.
    """
    table = cast(Table, model.__table__)  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    statement = insert(table).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=keys,
        set_={name: statement.excluded[name] for name in values if name not in keys},
        where=newer_fact(stored=table.c, incoming=statement.excluded, version=version, at=at),
    )
    # A row comes back only if one was written (rowcount is not reliable here on psycopg).
    written = session.execute(statement.returning(table.c[keys[0]])).first()
    return written is not None
