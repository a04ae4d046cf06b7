"""Knowflow's admin CLI for ops: migrations, the first admin, reindex, dead letters, digests.

Run as `knowflow-admin …` (or `python -m deploy.admin …`) with the same `KNOWFLOW_*`
environment as the services.
"""

import asyncio
import importlib
from pathlib import Path

import httpx
import typer
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import ValidationError
from sqlmodel import Session, select

from shared.auth import KeyFiles, TokenIssuer, load_or_create_private_key
from shared.db import make_engine
from shared.events.bus import Bus
from shared.events.envelope import DEAD_LETTER_ROOT, dead_letter_subject
from shared.ids import new_id
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


@cli.command("create-admin")
def create_admin(
    handle: str,
    email: str = typer.Option(..., help="The admin's email."),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
    display_name: str = typer.Option("Administrator"),
    database_url_option: str | None = typer.Option(None, "--database-url"),
) -> None:
    """Create an admin account in identity's database, or make an existing account admin."""
    from services.identity.models import User
    from services.identity.schemas import RegisterRequest
    from services.identity.service import do_register

    spec = service_spec("identity")
    engine = make_engine(database_url("identity", database_url_option))
    assert spec.migrations is not None
    upgrade(engine, spec.migrations, spec.all_tables)
    with Session(engine) as session:
        user = session.exec(select(User).where(User.handle == handle.lower())).first()
        if user is None:
            try:
                request = RegisterRequest(
                    handle=handle, email=email, password=password, display_name=display_name
                )
            except ValidationError as exc:
                raise typer.BadParameter(str(exc)) from exc
            user = do_register(session=session, request=request)
        user.is_admin = True
        session.add(user)
        session.commit()
        typer.echo(f"{user.handle} ({user.id}) is an admin")


def admin_token(settings: Settings) -> str:
    """A short-lived admin token signed with identity's key (ops hold the key file)."""
    issuer = TokenIssuer(
        load_or_create_private_key(settings.jwt_private_key_file),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=300,
    )
    return issuer.issue(user_id=new_id(), handle="knowflow-admin", is_admin=True)


@cli.command("rotate-signing-key")
def rotate_signing_key(
    force: bool = typer.Option(
        False, help="Rotate even if the last rotation's tokens may live (logs them out)."
    ),
) -> None:
    """Promote identity's next signing key to current and make a new next key."""
    settings = Settings()
    # Tokens signed by the outgoing previous key must all have expired before it goes.
    wait = settings.access_token_max_lifetime_seconds + settings.jwt_leeway_seconds + 5
    try:
        keys = KeyFiles(settings.jwt_private_key_file).rotate(
            min_interval_seconds=0 if force else wait
        )
    except ValueError as exc:
        typer.echo(f"not rotated: {exc} (--force drops that key now)", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"signing with {keys.current_kid}; next {keys.next_kid}")


@cli.command()
def reindex(search_service_url: str | None = typer.Option(None)) -> None:
    """Rebuild the search index from the posts service and swap it in atomically."""
    settings = Settings()
    url = (search_service_url or settings.search_service_url).rstrip("/")
    response = httpx.post(
        f"{url}/admin/reindex",
        headers={"Authorization": f"Bearer {admin_token(settings)}"},
        timeout=3600,
    )
    typer.echo(response.text)
    if response.status_code >= 400:
        raise typer.Exit(1)


@cli.command("build-digests")
def build_digests(
    period: str = typer.Option("daily", help="daily or weekly."),
    force: bool = typer.Option(
        False, help="Send for the window ending now, not the last boundary."
    ),
    digests_url: str | None = typer.Option(None),
) -> None:
    """Send a period's digests now (each window is sent once, however often this runs)."""
    settings = Settings()
    url = (digests_url or settings.digests_url).rstrip("/")
    response = httpx.post(
        f"{url}/admin/digests/send",
        params={"period": period, "force": str(force).lower()},
        headers={"Authorization": f"Bearer {admin_token(settings)}"},
        timeout=600,
    )
    typer.echo(response.text)
    if response.status_code >= 400:
        raise typer.Exit(1)


@cli.command("replay-dead-letters")
def replay_dead_letters(
    consumer: str | None = typer.Option(None, help="Only this consumer's parked messages."),
    nats_url: str | None = typer.Option(None),
) -> None:
    """Publish parked messages to their original subjects again, then drop them from the park."""
    settings = Settings()
    replayed = asyncio.run(
        replay_parked(nats_url or settings.nats_url, settings.stream_name, consumer)
    )
    typer.echo(f"replayed {replayed} message(s)")


async def replay_parked(nats_url: str, stream: str, consumer: str | None) -> int:
    bus = await Bus.connect(nats_url, stream=stream, name="knowflow-admin")
    try:
        subject = dead_letter_subject(consumer) if consumer else f"{DEAD_LETTER_ROOT}.>"
        subscription = await bus.js.pull_subscribe(subject, stream=bus.dead_letter_stream)
        replayed = 0
        while True:
            try:
                messages = await subscription.fetch(100, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                return replayed
            for message in messages:
                original = (message.headers or {}).get("Knowflow-Original-Subject")
                if original:
                    # A fresh message id: the original one may still be in the dedupe window.
                    await bus.js.publish(
                        original, message.data, headers={"Nats-Msg-Id": f"replay-{new_id()}"}
                    )
                    replayed += 1
                await bus.js.delete_msg(bus.dead_letter_stream, message.metadata.sequence.stream)
    finally:
        await bus.close()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
