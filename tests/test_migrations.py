"""Each service's Alembic history builds, from an empty database, exactly what its models declare."""

import importlib
from pathlib import Path

import pytest
from sqlalchemy import inspect

from shared.db import make_engine
from shared.migrations import pending_differences, upgrade
from shared.testing.backends import fresh_database
from shared.web import ServiceSpec

SERVICES = ["identity", "posts", "search", "digests", "notifications"]


def spec_of(name: str) -> ServiceSpec:
    spec: ServiceSpec = importlib.import_module(f"services.{name}.main").SPEC
    return spec


@pytest.mark.parametrize("name", SERVICES)
def test_upgrade_of_an_empty_database_matches_the_models(name: str, tmp_path: Path) -> None:
    spec = spec_of(name)
    assert spec.migrations is not None and any(spec.migrations.glob("*.py"))
    with fresh_database(tmp_path, name) as url:
        engine = make_engine(url)
        upgrade(engine, spec.migrations, spec.all_tables)
        assert pending_differences(engine, spec.all_tables) == []
        tables = set(inspect(engine).get_table_names())
        assert {"outbox", "processed_event", "alembic_version"} <= tables
        upgrade(engine, spec.migrations, spec.all_tables)  # a second start is a no-op
        engine.dispose()


def test_a_model_change_without_a_migration_is_detected(tmp_path: Path) -> None:
    spec = spec_of("identity")
    assert spec.migrations is not None
    with fresh_database(tmp_path, "identity") as url:
        engine = make_engine(url)
        upgrade(engine, spec.migrations, spec.all_tables)
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP INDEX ix_identity_user_email")
        assert pending_differences(engine, spec.all_tables) != []
        engine.dispose()
