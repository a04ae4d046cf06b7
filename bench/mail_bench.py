"""E-mail throughput: N pending e-mails through the sender to a local SMTP server process.

    .venv/bin/python -m bench.mail_bench                # 2,000 e-mails, ~1 minute
    .venv/bin/python -m bench.mail_bench -n 500 --senders 2

Makes a fresh SQLite database (or PostgreSQL with --database-url), N people with
addresses and one `mention` notification each through `do_notify` (so N `MailDelivery`
rows), starts aiosmtpd (services/notifications/tests/mail/smtp_server.py) on 127.0.0.1,
then runs `send_due` rounds (as the sender loop does, without its sleep) in `--senders`
threads, each with its own engine, until nothing is due. Reports e-mails/s (accepted by
the server / wall time of the sending), p50/p99 from the notification's creation to the
server's acceptance (`sent_at - created_at`), and checks every e-mail arrived once.
Goal: at least 50 e-mails/s with one sender on this machine.

Writes bench/results/mail.json and mail.md.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from services.notifications.mail.sender import send_due
from services.notifications.mail.transport import transport_for
from services.notifications.main import SPEC
from services.notifications.models import MailDelivery, NotifiedUser
from services.notifications.service import do_notify
from shared.db import make_engine
from shared.ids import new_id
from shared.natsserver import free_port
from shared.settings import Settings

RESULTS = Path(__file__).parent / "results"
SERVER_SCRIPT = Path(__file__).parent.parent / "services/notifications/tests/mail/smtp_server.py"
GOAL_PER_SECOND = 50.0


def seed(engine: Engine, count: int) -> None:
    with Session(engine) as session:
        for index in range(count):
            user_id = new_id()
            session.add(
                NotifiedUser(user_id=user_id, handle=f"p{index}", email=f"p{index}@example.org")
            )
            session.flush()
            item = new_id()
            do_notify(
                session=session,
                user_id=user_id,
                kind="mention",
                dedupe_key=f"mention:{item}",
                group_key=f"mention:{item}",
                title=f"Ada mentioned you in “Rotating keys {index}”",
                reason="you were mentioned",
                url=f"/api/v1/posts/{item}",
                actor_id=new_id(),
            )
        session.commit()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(count: int, senders: int, batch: int, database_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        url = database_url or f"sqlite:///{folder / 'bench.db'}"
        engine = make_engine(url)
        SPEC.prepare_database(engine)
        seed(engine, count)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), "--port", str(port), "--dir", str(folder / "in")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        settings = Settings(
            database_url=url,
            smtp_url=f"smtp://127.0.0.1:{port}",
            signing_key_file=folder / "signing.key",
            public_url="https://knowflow.example",
            mail_batch_size=batch,
        )
        engines = [engine] + [make_engine(url) for _ in range(senders - 1)]

        def sender(own: Engine) -> None:
            transport = transport_for(settings)
            while send_due(own, settings, transport).claimed:
                pass

        started = time.perf_counter()
        threads = [threading.Thread(target=sender, args=(each,)) for each in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        server.kill()
        server.wait()
        with Session(engine) as session:
            rows = session.exec(
                select(MailDelivery).where(col(MailDelivery.status) == "sent")
            ).all()
        latencies = [
            (row.sent_at - row.created_at).total_seconds()
            for row in rows
            if row.sent_at is not None
        ]
        arrived = Counter(
            str(BytesParser(policy=policy.default).parsebytes(path.read_bytes())["Message-ID"])
            for path in (folder / "in").glob("*.eml")
        )
        for each in engines:
            each.dispose()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "database": "postgresql" if database_url else "sqlite",
        "emails": count,
        "senders": senders,
        "batch_size": batch,
        "sent": len(rows),
        "arrived_distinct": len(arrived),
        "arrived_twice_or_more": sum(1 for seen in arrived.values() if seen > 1),
        "seconds": round(elapsed, 3),
        "emails_per_second": round(len(rows) / elapsed, 1),
        "p50_created_to_accepted_seconds": round(statistics.median(latencies), 3),
        "p99_created_to_accepted_seconds": round(percentile(latencies, 0.99), 3),
        "goal_emails_per_second": GOAL_PER_SECOND,
    }


def write(results: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mail.json").write_text(json.dumps(results, indent=2) + "\n")
    met = "met" if results["emails_per_second"] >= GOAL_PER_SECOND else "NOT met"
    (RESULTS / "mail.md").write_text(
        f"# E-mail throughput\n\nMeasured {results['date']} by `bench/mail_bench.py` on "
        f"{results['cpus']} cores (shared with other work), {results['database']}, "
        f"{results['senders']} sender(s), batches of {results['batch_size']}, aiosmtpd on "
        "127.0.0.1.\n\n"
        "| e-mails | sent | arrived twice | e-mails/s | goal | p50 created→accepted | p99 |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| {results['emails']} | {results['sent']} | {results['arrived_twice_or_more']} | "
        f"{results['emails_per_second']} | ≥ {GOAL_PER_SECOND:.0f} ({met}) | "
        f"{results['p50_created_to_accepted_seconds']} s | "
        f"{results['p99_created_to_accepted_seconds']} s |\n\n"
        "All e-mails are queued before sending starts, so created→accepted grows with the "
        "position in the queue: p50 is about half the run, p99 nearly all of it.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="e-mails")
    parser.add_argument("--senders", type=int, default=1)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    results = run(args.n, args.senders, args.batch, args.database_url)
    write(results)
    print(
        f"{results['emails_per_second']} e-mails/s (goal ≥ {GOAL_PER_SECOND:.0f}); "
        f"p50 {results['p50_created_to_accepted_seconds']} s, "
        f"p99 {results['p99_created_to_accepted_seconds']} s created→accepted; "
        f"{results['sent']}/{results['emails']} sent, "
        f"{results['arrived_twice_or_more']} arrived more than once"
    )


if __name__ == "__main__":
    main()
