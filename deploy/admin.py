"""Knowflow's admin CLI for ops: migrations, the first admin, reindex, dead letters, digests, imports.

Run as `knowflow-admin …` (or `python -m deploy.admin …`) with the same `KNOWFLOW_*`
environment as the services.
"""

import asyncio
import importlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import httpx
import typer
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import ValidationError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from sqlmodel import Session, select

from deploy.stackexchange_import import (
    IMPORTER_HANDLE,
    Dump,
    ImportReport,
    import_dump,
    read_dump,
)
from shared.auth import KeyFiles, TokenIssuer, load_or_create_private_key
from shared.db import make_engine
from shared.errors import UnprocessableContent
from shared.events.bus import Bus
from shared.events.consumer import CONSUMER_HEADER, ORIGINAL_SUBJECT_HEADER
from shared.events.envelope import DEAD_LETTER_ROOT, dead_letter_subject, replay_subject
from shared.ids import new_id
from shared.migrations import make_revision, pending_differences, upgrade
from shared.settings import Settings
from shared.web import ServiceSpec

SERVICES = ("identity", "posts", "search", "digests", "notifications")

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
            try:
                user = do_register(session=session, request=request)
            except UnprocessableContent as exc:  # the password policy
                raise typer.BadParameter(exc.detail) from exc
        user.role = "admin"
        session.add(user)
        session.commit()
        typer.echo(f"{user.handle} ({user.id}) is an admin")


def admin_token(
    settings: Settings, *, user_id: UUID | None = None, handle: str = "knowflow-admin"
) -> str:
    """A short-lived admin token signed with identity's key (ops hold the key file)."""
    issuer = TokenIssuer(
        load_or_create_private_key(settings.jwt_private_key_file),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=300,
    )
    return issuer.issue(user_id=user_id or new_id(), handle=handle, is_admin=True)


class AdminTokens:
    """Admin tokens for a long job: one per account, renewed well before its 300 s run out."""

    def __init__(self, settings: Settings, *, renew_after: float = 200.0) -> None:
        self.settings = settings
        self.renew_after = renew_after
        self._tokens: dict[UUID | None, tuple[float, str]] = {}

    def __call__(self, user_id: UUID | None = None) -> str:
        now = time.monotonic()
        issued = self._tokens.get(user_id)
        if issued is None or now - issued[0] > self.renew_after:
            handle = IMPORTER_HANDLE if user_id else "knowflow-admin"
            issued = (now, admin_token(self.settings, user_id=user_id, handle=handle))
            self._tokens[user_id] = issued
        return issued[1]


import_cli = typer.Typer(help="Bring content from elsewhere in, through the gateway.")
cli.add_typer(import_cli, name="import")


class RichProgress:
    """The importer's phases as a rich progress bar."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task: TaskID | None = None

    def phase(self, name: str, total: int) -> None:
        if self.task is not None:
            self.bar.update(self.task, completed=self.bar.tasks[-1].total)
        self.task = self.bar.add_task(name, total=total)

    def advance(self) -> None:
        if self.task is not None:
            self.bar.advance(self.task)


def run_import(dump: Dump, **options: Any) -> ImportReport:
    """`import_dump` with a progress bar on the terminal."""
    columns = (
        TextColumn("{task.description:>12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns) as bar:
        return asyncio.run(import_dump(dump, progress=RichProgress(bar), **options))


@import_cli.command("stackexchange")
def import_stackexchange(
    folder: Annotated[
        Path,
        typer.Argument(
            exists=True, file_okay=False, help="A site's dump (Posts.xml, Users.xml, ...)."
        ),
    ],
    group: str | None = typer.Option(
        None, "--group", help="Import into this group (its slug), created if missing."
    ),
    private: bool = typer.Option(False, "--private", help="A new group is private, not open."),
    gateway_url: str = typer.Option(
        "http://127.0.0.1:8000", envvar="KNOWFLOW_GATEWAY_URL", help="The platform's gateway."
    ),
    concurrency: int = typer.Option(16, min=1, max=64, help="Requests in flight at once."),
) -> None:
    """Import a Stack Exchange dump: people, questions, answers, comments, acceptances, scores.

    Idempotent and resumable: a second run creates nothing, a run cut short is finished
    by running it again.
    """
    settings = Settings()
    typer.echo(f"reading {folder} ...")
    dump = read_dump(folder)
    typer.echo(
        f"{dump.host}: {len(dump.contributors())} people, {len(dump.site.questions)} questions, "
        f"{len(dump.site.answers)} answers, {len(dump.comments)} comments"
    )
    report = run_import(
        dump,
        gateway_url=gateway_url,
        tokens=AdminTokens(settings),
        group=group,
        visibility="private" if private else "open",
        concurrency=concurrency,
    )
    for line in report.lines():
        typer.echo(line)
    typer.echo(dump.site.attribution)
    if report.failed:
        for kind, messages in sorted(report.failed.items()):
            for message in messages[:5]:
                typer.echo(f"failed {kind}: {message}", err=True)
        typer.echo("some items failed: run the same command again to finish", err=True)
        raise typer.Exit(1)


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
    """Send the due digests of everyone on a period now (each person's window goes once)."""
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
    settle_seconds: float = typer.Option(
        30.0, help="How long to wait for the consumers to settle what was replayed."
    ),
) -> None:
    """Replay what is parked now, each message to the consumer that parked it, once."""
    settings = Settings()
    report = asyncio.run(
        replay_parked(
            nats_url or settings.nats_url,
            settings.stream_name,
            consumer,
            settle_seconds=settle_seconds,
        )
    )
    per_consumer = ", ".join(
        f"{name}: {count}" for name, count in sorted(report.by_consumer.items())
    )
    typer.echo(
        f"replayed {report.replayed} message(s){f' ({per_consumer})' if per_consumer else ''}"
    )
    typer.echo(f"parked again: {report.parked_again}")
    if report.skipped:
        typer.echo(f"left parked (no consumer or subject recorded): {report.skipped}")
    if report.unsettled:
        typer.echo(f"still in progress after {settle_seconds:.0f} s: {', '.join(report.unsettled)}")


@dataclass
class ReplayReport:
    """What a replay did: messages replayed (per consumer), parked again, left alone."""

    replayed: int = 0
    parked_again: int = 0
    skipped: int = 0
    by_consumer: dict[str, int] = field(default_factory=dict)
    unsettled: list[str] = field(default_factory=list)


async def replay_parked(
    nats_url: str, stream: str, consumer: str | None, *, settle_seconds: float = 30.0
) -> ReplayReport:
    """Replay the dead letters parked before now, then count those parked again.

    Only messages up to the park's last sequence at the start are replayed, so a message
    parked again at once is not replayed again in a loop. Each goes to the replay subject
    of the consumer that parked it (`Knowflow-Consumer`), so no other consumer sees it.
    """
    bus = await Bus.connect(nats_url, stream=stream, name="knowflow-admin")
    report = ReplayReport()
    try:
        state = (await bus.js.stream_info(bus.dead_letter_stream)).state
        last = int(state.last_seq or 0)
        if not state.messages:
            return report
        subject = dead_letter_subject(consumer) if consumer else f"{DEAD_LETTER_ROOT}.>"
        replayed: dict[str, set[bytes]] = {}
        async for message in _parked_messages(bus, subject, first=1, last=last):
            headers = message.headers or {}
            target = headers.get(CONSUMER_HEADER) or message.subject.removeprefix(
                f"{DEAD_LETTER_ROOT}."
            )
            original = headers.get(ORIGINAL_SUBJECT_HEADER)
            if not original or not target:
                report.skipped += 1
                continue
            # A fresh message id: the original one may still be in the dedupe window.
            await bus.js.publish(
                replay_subject(target, original),
                message.data,
                headers={"Nats-Msg-Id": f"replay-{new_id()}", ORIGINAL_SUBJECT_HEADER: original},
            )
            await bus.js.delete_msg(bus.dead_letter_stream, message.metadata.sequence.stream)
            replayed.setdefault(target, set()).add(message.data)
            report.replayed += 1
            report.by_consumer[target] = report.by_consumer.get(target, 0) + 1
        report.unsettled = await _wait_until_settled(bus, sorted(replayed), settle_seconds)
        async for message in _parked_messages(bus, subject, first=last + 1, last=None):
            target = (message.headers or {}).get(CONSUMER_HEADER, "")
            if message.data in replayed.get(target, ()):
                report.parked_again += 1
        return report
    finally:
        await bus.close()


async def _parked_messages(
    bus: Bus, subject: str, *, first: int, last: int | None
) -> AsyncIterator[Msg]:
    """The park's messages on `subject` from sequence `first` to `last` (None: to the end)."""
    subscription = await bus.js.pull_subscribe(
        subject,
        stream=bus.dead_letter_stream,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=first,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=60.0,
        ),
    )
    try:
        while True:
            try:
                messages = await subscription.fetch(100, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                return
            for message in messages:
                if last is not None and message.metadata.sequence.stream > last:
                    return
                yield message
                if last is not None and message.metadata.sequence.stream >= last:
                    return
    finally:
        await subscription.unsubscribe()


async def _wait_until_settled(bus: Bus, consumers: list[str], timeout: float) -> list[str]:
    """Wait until these consumers have nothing pending; the ones that still do."""
    deadline = asyncio.get_running_loop().time() + timeout
    busy = list(consumers)
    while busy:
        still: list[str] = []
        for name in busy:
            try:
                info = await bus.js.consumer_info(bus.stream, name)
            except NotFoundError:
                continue  # nobody consumes it here: nothing to wait for
            if info.num_pending or info.num_ack_pending:
                still.append(name)
        busy = still
        if not busy or asyncio.get_running_loop().time() > deadline:
            return busy
        await asyncio.sleep(0.2)
    return busy


def main() -> None:
    cli()


if __name__ == "__main__":
    main()


# --- mail: what the file transport wrote (KNOWFLOW_SMTP_URL empty) --------------------

MailDirOption = Annotated[
    Path | None, typer.Option(help="Where the e-mails are; defaults to KNOWFLOW_MAIL_DIR.")
]
mail_cli = typer.Typer(help="E-mails written to files under KNOWFLOW_MAIL_DIR (no SMTP server).")
cli.add_typer(mail_cli, name="mail")


@mail_cli.command("list")
def mail_list(
    mail_dir: MailDirOption = None,
) -> None:
    """Every e-mail that would have been sent, newest first: id, date, to, subject."""
    from services.notifications.mail.files import list_stored

    directory = mail_dir or Settings().mail_dir
    mails = list_stored(directory)
    if not mails:
        typer.echo(f"no e-mails in {directory}")
        return
    for mail in mails:
        typer.echo(f"{mail.id}  {mail.date}  {mail.to}  {mail.subject}")


@mail_cli.command("show")
def mail_show(
    mail_id: str,
    mail_dir: MailDirOption = None,
    html: bool = typer.Option(False, "--html", help="Print the HTML part, not the text."),
) -> None:
    """One e-mail: its headers, then its text (or HTML) part."""
    from services.notifications.mail.files import read_stored

    mail = read_stored(mail_dir or Settings().mail_dir, mail_id)
    if mail is None:
        typer.echo(f"no e-mail {mail_id} (see `knowflow-admin mail list`)", err=True)
        raise typer.Exit(1)
    for name, value in mail.headers:
        typer.echo(f"{name}: {value}")
    typer.echo("")
    typer.echo(mail.html if html else mail.text)


# --- audit: the hash-chained audit log in identity's database -------------------------

audit_cli = typer.Typer(help="Identity's audit log: verify its hash chain.")
cli.add_typer(audit_cli, name="audit")


@audit_cli.command("verify")
def audit_verify(
    database_url_option: str | None = typer.Option(None, "--database-url"),
) -> None:
    """Walk the chain from the first entry; report the first break and exit 1, else 0."""
    from services.identity.audit import verify_chain

    engine = make_engine(database_url("identity", database_url_option))
    try:
        with Session(engine) as session:
            checked, broken = verify_chain(session)
    finally:
        engine.dispose()
    if broken is not None:
        typer.echo(
            f"audit chain broken at entry {broken.sequence}: {broken.reason} "
            f"({checked} entries verified before it)",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"audit chain intact: {checked} entries verified")
