"""Each service's Alembic history builds, from an empty database, exactly what its models declare."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from shared.db import make_engine
from shared.migrations import alembic_config, at_head, heads_of, pending_differences, upgrade
from shared.testing.backends import fresh_database
from shared.testing.fixtures import MigratedTemplates
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


@pytest.mark.parametrize("name", SERVICES)
def test_a_service_tests_sqlite_database_starts_at_head_matching_the_models(
    name: str, tmp_path: Path, migrated_templates: MigratedTemplates
) -> None:
    """`service_client` copies a once-migrated template instead of migrating each database."""
    spec = spec_of(name)
    assert spec.migrations is not None
    url = f"sqlite:///{tmp_path / name}.db"
    migrated_templates.seed(spec, url)
    engine = make_engine(url)
    assert pending_differences(engine, spec.all_tables) == []
    head = ScriptDirectory.from_config(alembic_config(spec.migrations, spec.all_tables))
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    assert [row[0] for row in versions] == [head.get_current_head()]
    # A database already there (a restarted service's) is kept as it is.
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
    migrated_templates.seed(spec, url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 0
    engine.dispose()


@pytest.mark.parametrize("name", SERVICES)
def test_the_heads_read_from_a_history_are_alembics(name: str) -> None:
    spec = spec_of(name)
    assert spec.migrations is not None
    script = ScriptDirectory.from_config(alembic_config(spec.migrations, spec.all_tables))
    assert heads_of(spec.migrations) == set(script.get_heads())


def test_at_head_means_the_database_records_exactly_the_heads(tmp_path: Path) -> None:
    spec = spec_of("posts")
    assert spec.migrations is not None
    script = ScriptDirectory.from_config(alembic_config(spec.migrations, spec.all_tables))
    with fresh_database(tmp_path, "posts") as url:
        engine = make_engine(url)
        assert not at_head(engine, spec.migrations)  # no history recorded at all
        upgrade(engine, spec.migrations, spec.all_tables)
        assert at_head(engine, spec.migrations)
        current = script.get_current_head()
        assert current is not None
        head = script.get_revision(current)
        assert head is not None
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE alembic_version SET version_num = :older"),
                {"older": head.down_revision},
            )
        assert not at_head(engine, spec.migrations)  # one revision behind
        engine.dispose()


def test_a_service_started_on_a_database_at_head_never_loads_alembic(tmp_path: Path) -> None:
    """Alembic and mako are 11 MB of a service's memory; only a migration needs them."""
    database = tmp_path / "digests.db"
    start = (
        "import sys; from shared.db import make_engine; import services.digests.main as m;"
        f" m.SPEC.prepare_database(make_engine('sqlite:///{database}'));"
        " print('alembic' in sys.modules)"
    )
    root = Path(__file__).resolve().parent.parent
    runs = [
        subprocess.run(
            [sys.executable, "-c", start], cwd=root, capture_output=True, text=True, check=True
        ).stdout.split()[-1]
        for _ in range(2)
    ]
    assert runs == ["True", "False"]  # the first start migrates; the second has nothing to do
