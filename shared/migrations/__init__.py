"""Alembic, run the same way for every service: one env, one template, one history per service.

`shared/migrations/` holds the environment and the revision template; each service's
revisions live in `services/<name>/migrations/`. Every service owns its database, so
each upgrade sees only that service's history.

Alembic is imported only when there is something to do: a service started on a
database already at head never loads it (with mako, 11 MB of every service's memory).
"""

import ast
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, MetaData, inspect, text
from sqlmodel import SQLModel

from shared.db import without_time_bounds

if TYPE_CHECKING:
    from alembic.config import Config

ENVIRONMENT = Path(__file__).parent


def only_declared_tables(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Leave alone tables the models do not declare (e.g. the search engine's FTS tables)."""
    return not (type_ == "table" and reflected and compare_to is None)


def metadata_of(tables: Sequence[type[SQLModel]]) -> MetaData:
    """A MetaData with only these tables (the global one may hold other services' tables)."""
    metadata = MetaData()
    for model in tables:
        model.__table__.to_metadata(metadata)  # type: ignore[attr-defined]
    return metadata


def alembic_config(versions: Path, tables: Sequence[type[SQLModel]]) -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(ENVIRONMENT))
    config.set_main_option("version_locations", str(versions))
    config.set_main_option("path_separator", "os")
    config.attributes["target_metadata"] = metadata_of(tables)
    return config


def _assignment(node: ast.stmt) -> tuple[str, ast.expr] | None:
    """`name = value` or `name: type = value` at a module's top level."""
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
        return node.target.id, node.value
    if (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
    ):
        return node.targets[0].id, node.value
    return None


def heads_of(versions: Path) -> set[str]:
    """The revisions of a history that no other revision follows, read from its files
    (`revision` and `down_revision`, as Alembic writes them)."""
    revisions: set[str] = set()
    followed: set[str] = set()
    for path in versions.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            assigned = _assignment(node)
            if assigned is None or assigned[0] not in ("revision", "down_revision"):
                continue
            value = ast.literal_eval(assigned[1])
            if assigned[0] == "revision":
                revisions.add(value)
            elif value is not None:
                followed.update([value] if isinstance(value, str) else value)
    return revisions - followed


def at_head(engine: Engine, versions: Path) -> bool:
    """Whether the database records exactly the history's heads (then there is nothing to
    upgrade, and Alembic need not be loaded)."""
    heads = heads_of(versions)
    with engine.connect() as connection:
        if not heads or not inspect(connection).has_table("alembic_version"):
            return False
        stamped = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    return {row[0] for row in stamped} == heads


def upgrade(engine: Engine, versions: Path, tables: Sequence[type[SQLModel]]) -> None:
    """Bring the database to the newest revision of this service's history."""
    if at_head(engine, versions):
        return
    from alembic import command

    config = alembic_config(versions, tables)
    with engine.begin() as connection, without_time_bounds(connection):
        if connection.dialect.name == "postgresql":
            # Replicas starting together: one migrates, the others wait and find it done.
            connection.execute(text("SELECT pg_advisory_xact_lock(7355608)"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def pending_differences(engine: Engine, tables: Sequence[type[SQLModel]]) -> list[Any]:
    """What the models declare that the database lacks (empty when they match)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": only_declared_tables}
        )
        return list(compare_metadata(context, metadata_of(tables)))


def make_revision(
    engine: Engine, versions: Path, tables: Sequence[type[SQLModel]], message: str
) -> None:
    """Autogenerate a revision against a database at head (a developer's tool)."""
    from alembic import command

    config = alembic_config(versions, tables)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)
