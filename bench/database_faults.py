"""What clients see when the database is busy, cut off or stalled: 503s, never 500s.

    .venv/bin/python -m bench.database_faults                  # SQLite writers (+ PostgreSQL)
    .venv/bin/python -m bench.database_faults --seconds 5

Starts nats-server and identity (uvicorn, 1 worker) as real processes on 127.0.0.1.

- sqlite: `--writers` threads PATCH /users/me (a write transaction each) as fast as
  they can for `--seconds`: SQLite serialises them on its one writer lock. Goal: no
  503 (the 5 s busy timeout is never reached under load), max latency far below 5 s.
- postgres (when KNOWFLOW_TEST_POSTGRES_URL is set): identity reaches a fresh schema
  through a TCP proxy this script controls; the writers run through phases: normal,
  cut off (connections reset, new ones refused), normal, stalled (no byte moves),
  normal. Goal: 0 answers 500 in every phase, each phase's slowest answer within a
  few seconds (the connect, pool and statement bounds of shared/db.py), and writes
  succeed again within a second or two of the database coming back.

Writes bench/results/database-faults.md and .json.
"""

import argparse
import json
import secrets
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from bench.gateway_bench import uvicorn_process
from shared.natsserver import free_port, start_nats_server
from shared.testing.backends import fresh_database, postgres_url
from shared.testing.tcp_proxy import Mode, TcpProxy, tcp_proxy

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@dataclass
class Phase:
    name: str
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    first_ok_after_s: float | None = None

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies) or [0.0]
        return {
            "phase": self.name,
            "answers": sum(self.statuses.values()),
            "statuses": dict(sorted(self.statuses.items())),
            "p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p99_ms": round(
                ordered[int(len(ordered) * 0.99) - 1 if len(ordered) > 1 else 0] * 1000, 1
            ),
            "max_ms": round(ordered[-1] * 1000, 1),
            "first_2xx_after_s": self.first_ok_after_s,
        }


@contextmanager
def identity(database_url: str, work: Path) -> Iterator[str]:
    nats_port, port = free_port(), free_port()
    nats = start_nats_server(work / "nats", port=nats_port)
    env = {
        "KNOWFLOW_DATABASE_URL": database_url,
        "KNOWFLOW_NATS_URL": f"nats://127.0.0.1:{nats_port}",
        "KNOWFLOW_JWT_PRIVATE_KEY_FILE": str(work / "jwt.pem"),
        "KNOWFLOW_LOG_JSON": "true",
    }
    try:
        with uvicorn_process(
            "services.identity.main:app", port=port, env=env, workers=1, log=work / "identity.log"
        ):
            yield f"http://127.0.0.1:{port}"
    finally:
        log = work / "identity.log"
        if log.exists():  # kept for reading after the run
            (ROOT / "var" / "bench-database-faults" / f"{work.name}-identity.log").write_bytes(
                log.read_bytes()
            )
        nats.terminate()
        nats.wait(timeout=10)


def register_writers(base: str, count: int) -> list[dict[str, str]]:
    headers = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for n in range(count):
            handle = f"w{n}_{secrets.token_hex(3)}"
            response = client.post(
                "/auth/register",
                json={
                    "handle": handle,
                    "email": f"{handle}@example.org",
                    "password": "correct horse battery",
                    "display_name": handle,
                },
            )
            response.raise_for_status()
            headers.append({"Authorization": f"Bearer {response.json()['access_token']}"})
    return headers


def run_writers(
    base: str,
    headers: list[dict[str, str]],
    schedule: list[tuple[str, float, Mode | None]],
    proxy: TcpProxy | None,
) -> list[Phase]:
    """Writers PATCH /users/me through every phase of `schedule` (name, seconds, proxy mode)."""
    phases = [Phase(name) for name, _seconds, _mode in schedule]
    current: dict[str, Any] = {"index": 0, "started": time.monotonic()}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(auth: dict[str, str]) -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            n = 0
            while not stop.is_set():
                n += 1
                began = time.monotonic()
                try:
                    status = client.patch(
                        "/users/me", headers=auth, json={"bio": f"v{n}"}
                    ).status_code
                except httpx.HTTPError:
                    status = 0  # no answer at all
                ended = time.monotonic()
                with lock:
                    phase = phases[current["index"]]
                    phase.statuses[status] += 1
                    phase.latencies.append(ended - began)
                    if 200 <= status < 300 and phase.first_ok_after_s is None:
                        phase.first_ok_after_s = round(ended - current["started"], 2)

    threads = [threading.Thread(target=writer, args=(auth,), daemon=True) for auth in headers]
    for thread in threads:
        thread.start()
    for index, (_name, seconds, mode) in enumerate(schedule):
        if proxy is not None and mode is not None:
            proxy.set_mode(mode)
        with lock:
            current.update(index=index, started=time.monotonic())
        time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "writers": args.writers,
    }
    logs = ROOT / "var" / "bench-database-faults"
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=logs) as scratch:
        work = Path(scratch)
        with identity(f"sqlite:///{work / 'identity.db'}", work / "sqlite") as base:
            headers = register_writers(base, args.writers)
            phases = run_writers(base, headers, [("sqlite under load", args.seconds, None)], None)
        report["sqlite"] = [phase.summary() for phase in phases]

        base_url = postgres_url()
        if base_url is None:
            report["postgres"] = "skipped: KNOWFLOW_TEST_POSTGRES_URL is not set"
        else:
            target = make_url(base_url)
            with (
                fresh_database(work, "identity") as url,
                tcp_proxy(target.host or "127.0.0.1", target.port or 5432) as proxy,
            ):
                proxied = make_url(url).set(host="127.0.0.1", port=proxy.port)
                with identity(proxied.render_as_string(hide_password=False), work / "pg") as base:
                    headers = register_writers(base, args.writers)
                    phases = run_writers(
                        base,
                        headers,
                        [
                            ("postgres normal", args.seconds, "pass"),
                            ("postgres cut off", args.seconds, "refuse"),
                            ("postgres back", args.seconds, "pass"),
                            ("postgres stalled", args.seconds + 4, "stall"),
                            ("postgres back again", args.seconds + 4, "pass"),
                        ],
                        proxy,
                    )
            report["postgres"] = [phase.summary() for phase in phases]

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "database-faults.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Database faults: what writers see",
        "",
        f"{report['date']}, {args.writers} writers (PATCH /users/me), identity 1 worker.",
        "Goals: 0 answers 500 (or none at all) in every phase; sqlite: no 503 under load;",
        "each fault phase's slowest answer within ~8 s; 2xx again soon after the database is back.",
        "",
        "| phase | answers | statuses | p50 ms | p99 ms | max ms | first 2xx after s |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = report["sqlite"] + (report["postgres"] if isinstance(report["postgres"], list) else [])
    for row in rows:
        lines.append(
            f"| {row['phase']} | {row['answers']} | {row['statuses']} | {row['p50_ms']} "
            f"| {row['p99_ms']} | {row['max_ms']} | {row['first_2xx_after_s']} |"
        )
    if not isinstance(report["postgres"], list):
        lines += ["", f"postgres: {report['postgres']}"]
    (RESULTS / "database-faults.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
