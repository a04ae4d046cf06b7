"""Knowflow's admin CLI for ops: migrations, the first admin, reindex, dead letters, digests.

Run as `knowflow-admin …` (or `python -m deploy.admin …`) with the same `KNOWFLOW_*`
environment as the services.
"""

import importlib
from pathlib import Path

import typer

from shared.db import make_engine
from shared.migrations import make_revision, pending_differences, upgrade
from shared.settings import Settings
from shared.web import ServiceSpec

SERVICES = ("identity", "posts", "search", "digests")

cli = typer.Typer(help=__doc__, no_args_is_help=True)


def service_spec(name: str) -> ServiceSpec:
    if name not in SERVICES:
        raise typer.BadParameter(f"one of {', '.join(SERVICES)}")
    spec: ServiceSpec = importlib.import_module(f"services.{name}.main").SPEC
    return spec


def database_url(name: str, override: str | None) -> str:
    return override or Settings().database_url


@cli.command()
def migrate(
    service: str,
    database_url_option: str | None = typer.Option(None, "--database-url"),
) -> None:
    """Upgrade a service's database to its newest revision."""
    spec = service_spec(service)
    assert spec.migrations is not None
    engine = make_engine(database_url(service, database_url_option))
    upgrade(engine, spec.migrations, spec.all_tables)
    typer.echo(f"{service}: at head")


@cli.command("make-migration")
def make_migration(service: str, message: str = typer.Option(..., "-m", "--message")) -> None:
    """Autogenerate a revision for a service's model changes (developers)."""
    spec = service_spec(service)
    assert spec.migrations is not None
    spec.migrations.mkdir(parents=True, exist_ok=True)
    scratch = Path("var") / f"make-migration-{service}.db"
    scratch.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{scratch}")
    upgrade(engine, spec.migrations, spec.all_tables)
    if not pending_differences(engine, spec.all_tables):
        typer.echo(f"{service}: models match the migrations; nothing to do")
        engine.dispose()
        return
    make_revision(engine, spec.migrations, spec.all_tables, message)
    engine.dispose()
    for leftover in (scratch, scratch.with_suffix(".db-wal"), scratch.with_suffix(".db-shm")):
        leftover.unlink(missing_ok=True)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
