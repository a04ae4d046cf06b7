"""SSE fan-out: N concurrent live streams through one gateway, one notification each.

    .venv/bin/python -m bench.sse_bench                    # 500, 1000, 2000 streams
    .venv/bin/python -m bench.sse_bench --levels 500,4000

Starts nats-server, the notifications service (1 uvicorn worker, SQLite) and the gateway
(CappedHttpToolsProtocol, throttling off: one stream per user is not what it meters) as
real processes on 127.0.0.1; a JWKS for the bench's own tokens is served from here. For
each level it opens N streams (one user each) through the gateway, then creates one
notification per user with `do_notify` in batched transactions (on the service's
database, as another replica's consumers would), and times each event from its commit
to its arrival on the client. The service's outbox relay publishes them: it is woken at
once by commits in its own process but polls every second for commits made elsewhere,
so up to 1 s of each latency here is that poll (a second relay in this process was
tried: two relays fighting over SQLite's single writer stalled for seconds). Prints streams held, events/s end to end, latency p50/p99
and gateway/service RSS. Bounded: at most a few minutes, 127.0.0.1 only.
Writes bench/results/sse.json and sse.md.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session

from services.notifications.service import do_notify
from shared.auth import TokenIssuer
from shared.db import make_engine
from shared.ids import new_id
from shared.natsserver import free_port, start_nats_server, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
GOAL = "a person's open page receives each new notification within a second"
BATCH = 200  # notifications per transaction
OPEN_CONCURRENCY = 100  # streams being opened at once
DELIVERY_TIMEOUT = 30.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.contextmanager
def jwks_server(jwks: dict[str, Any]) -> Iterator[str]:
    body = json.dumps(jwks).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def start(
    module: str, port: int, env: dict[str, str], log: Path, http: str
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", f"{module}:app", "--port", str(port)]
    command += ["--loop", "uvloop", "--http", http, "--no-access-log", "--no-server-header"]
    command += ["--timeout-graceful-shutdown", "5", "--backlog", "4096"]
    return subprocess.Popen(
        command, env={**os.environ, **env}, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready")


class Client:
    """One raw SSE connection: records when each notification id arrives."""

    def __init__(self, user_id: UUID, token: str) -> None:
        self.user_id = user_id
        self.token = token
        self.arrivals: dict[str, float] = {}
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None
        self.opened = asyncio.Event()
        self.failed: str | None = None

    async def run(self, port: int) -> None:
        try:
            reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
            self.writer.write(
                (
                    "GET /api/v1/notifications/stream HTTP/1.1\r\nhost: bench\r\n"
                    f"authorization: Bearer {self.token}\r\naccept: text/event-stream\r\n\r\n"
                ).encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                self.failed = head.split(b"\r\n", 1)[0].decode()
                return
            self.opened.set()
            pending = b""
            while chunk := await reader.read(65536):
                now = time.perf_counter()
                pending += chunk
                while (start := pending.find(b"id: ")) >= 0:
                    end = pending.find(b"\n", start)
                    if end < 0:
                        break
                    self.arrivals[pending[start + 4 : end].decode()] = now
                    pending = pending[end:]
                pending = pending[-64:]
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.failed = self.failed or type(exc).__name__
        finally:
            self.opened.set()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def create_notifications(engine: Any, users: list[UUID]) -> dict[str, float]:
    """One notification per user, BATCH per transaction; commit time of each id."""
    committed: dict[str, float] = {}
    for index in range(0, len(users), BATCH):
        ids = []
        with Session(engine) as session:
            for user_id in users[index : index + BATCH]:
                created = do_notify(
                    session=session,
                    user_id=user_id,
                    kind="reply",  # inbox only: no e-mail rows
                    dedupe_key=f"bench:{new_id()}",
                    group_key="bench",
                    title="A reply to your post",
                    reason="you wrote the post",
                    url=f"/api/v1/posts/{new_id()}",
                )
                assert created is not None
                ids.append(str(created.id))
            session.commit()
        now = time.perf_counter()
        committed.update(dict.fromkeys(ids, now))
    return committed


async def run_level(
    streams: int, gateway_port: int, issuer: TokenIssuer, engine: Any, pids: dict[str, int]
) -> dict[str, Any]:
    clients = [
        Client(user, issuer.issue(user_id=user, handle="b"))
        for user in (new_id() for _ in range(streams))
    ]
    rss_before = {name: rss_mib(pid) for name, pid in pids.items()}
    opening = time.perf_counter()
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def open_one(client: Client) -> None:
        async with gate:
            client.task = asyncio.create_task(client.run(gateway_port))
            await client.opened.wait()

    await asyncio.gather(*(open_one(client) for client in clients))
    open_seconds = time.perf_counter() - opening
    held = [client for client in clients if client.failed is None]
    failures: dict[str, int] = {}
    for client in clients:
        if client.failed is not None:
            failures[client.failed] = failures.get(client.failed, 0) + 1
    await asyncio.sleep(1.0)  # let the streams' first reads settle
    rss_held = {name: rss_mib(pid) for name, pid in pids.items()}
    fds = {name: open_fds(pid) for name, pid in pids.items()}

    committed = await asyncio.to_thread(create_notifications, engine, [c.user_id for c in held])
    deadline = time.perf_counter() + DELIVERY_TIMEOUT
    while time.perf_counter() < deadline:
        if sum(len(client.arrivals) for client in held) >= len(committed):
            break
        await asyncio.sleep(0.05)
    latencies = []
    last_arrival = 0.0
    for client in held:
        for event_id, arrived in client.arrivals.items():
            if event_id in committed:
                latencies.append((arrived - committed[event_id]) * 1000)
                last_arrival = max(last_arrival, arrived)
    delivered = len(latencies)
    first_commit = min(committed.values()) if committed else 0.0
    window = max(last_arrival - first_commit, 1e-9)
    for client in clients:
        client.close()
    await asyncio.gather(*(c.task for c in clients if c.task), return_exceptions=True)
    latencies.sort()

    def percentile(share: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(share * len(latencies)))], 1)
            if latencies
            else 0.0
        )

    return {
        "streams_requested": streams,
        "streams_held": len(held),
        "open_failures": failures,
        "open_seconds": round(open_seconds, 2),
        "notifications": len(committed),
        "delivered": delivered,
        "events_per_second": round(delivered / window, 1),
        "latency_p50_ms": percentile(0.50),
        "latency_p99_ms": percentile(0.99),
        "latency_max_ms": round(latencies[-1], 1) if latencies else 0.0,
        "rss_mib_before": {k: round(v, 1) for k, v in rss_before.items()},
        "rss_mib_held": {k: round(v, 1) for k, v in rss_held.items()},
        "kib_per_stream": {
            name: round((rss_held[name] - rss_before[name]) * 1024 / max(len(held), 1), 1)
            for name in pids
        },
        "open_fds": fds,
    }


async def bench(levels: list[int], work: Path) -> dict[str, Any]:
    issuer = TokenIssuer(
        Ed25519PrivateKey.generate(),
        issuer="knowflow-identity",
        audience="knowflow",
        ttl_seconds=900,
    )
    nats_port, service_port, gateway_port = free_port(), free_port(), free_port()
    nats = start_nats_server(work / "nats", port=nats_port)
    database_url = f"sqlite:///{work / 'notifications.db'}"
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        with jwks_server(issuer.jwks()) as identity_url:
            env = {
                "KNOWFLOW_DATABASE_URL": database_url,
                "KNOWFLOW_NATS_URL": f"nats://127.0.0.1:{nats_port}",
                "KNOWFLOW_IDENTITY_URL": identity_url,
                "KNOWFLOW_NOTIFICATIONS_URL": f"http://127.0.0.1:{service_port}",
                "KNOWFLOW_RATE_LIMIT_ENABLED": "false",
                "KNOWFLOW_LOG_LEVEL": "WARNING",
                "KNOWFLOW_SERVICE_NAME": "notifications",
            }
            processes["service"] = start(
                "services.notifications.main", service_port, env, work / "service.log", "httptools"
            )
            wait_ready(f"http://127.0.0.1:{service_port}")
            processes["gateway"] = start(
                "gateway.main",
                gateway_port,
                env,
                work / "gateway.log",
                "gateway.server:CappedHttpToolsProtocol",
            )
            wait_for_port(gateway_port, timeout=30, host="127.0.0.1")
            wait_ready(f"http://127.0.0.1:{gateway_port}")
            engine = make_engine(database_url)
            pids = {name: process.pid for name, process in processes.items()}
            results = []
            try:
                for level in levels:
                    result = await run_level(level, gateway_port, issuer, engine, pids)
                    results.append(result)
                    print(json.dumps(result), flush=True)
                    await asyncio.sleep(1.0)
            finally:
                engine.dispose()
            return {
                "goal": GOAL,
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                "database": "SQLite (one file), heartbeat 15 s",
                "levels": results,
            }
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        nats.terminate()
        nats.wait(timeout=10)


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# SSE fan-out through one gateway",
        "",
        f"Goal: {report['goal']}. {report['machine']}; fd limit {report['fd_limit']}; "
        f"{report['database']}; {report['date']}. `python -m bench.sse_bench`.",
        "",
        "| streams held / asked | events/s | p50 ms | p99 ms | max ms | gateway RSS MiB (KiB/stream) | service RSS MiB (KiB/stream) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for level in report["levels"]:
        rss, per = level["rss_mib_held"], level["kib_per_stream"]
        lines.append(
            f"| {level['streams_held']} / {level['streams_requested']} | {level['events_per_second']} "
            f"| {level['latency_p50_ms']} | {level['latency_p99_ms']} | {level['latency_max_ms']} "
            f"| {rss['gateway']} ({per['gateway']}) | {rss['service']} ({per['service']}) |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="500,1000,2000")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    with tempfile.TemporaryDirectory(prefix="sse-bench-") as work:
        report = asyncio.run(bench(levels, Path(work)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sse.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "sse.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
