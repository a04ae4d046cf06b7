"""Alembic, run the same way for every service: one env, one template, one history per service.

`shared/migrations/` holds the environment and the revision template; each service's
revisions live in `services/<name>/migrations/`. Every service owns its database, so
each upgrade sees only that service's history.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, text
from sqlmodel import SQLModel

from shared.db import without_time_bounds

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


def alembic_config(versions: Path, tables: Sequence[type[SQLModel]]) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ENVIRONMENT))
    config.set_main_option("version_locations", str(versions))
    config.set_main_option("path_separator", "os")
    config.attributes["target_metadata"] = metadata_of(tables)
    return config


def upgrade(engine: Engine, versions: Path, tables: Sequence[type[SQLModel]]) -> None:
    """Bring the database to the newest revision of this service's history."""
    config = alembic_config(versions, tables)
    with engine.begin() as connection, without_time_bounds(connection):
        if connection.dialect.name == "postgresql":
            # Replicas starting together: one migrates, the others wait and find it done.
            connection.execute(text("SELECT pg_advisory_xact_lock(7355608)"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def pending_differences(engine: Engine, tables: Sequence[type[SQLModel]]) -> list[Any]:
    """What the models declare that the database lacks (empty when they match)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": only_declared_tables}
        )
        return list(compare_metadata(context, metadata_of(tables)))


def make_revision(
    engine: Engine, versions: Path, tables: Sequence[type[SQLModel]], message: str
) -> None:
    """Autogenerate a revision against a database at head (a developer's tool)."""
    config = alembic_config(versions, tables)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)
