"""Search through the real event path: index throughput, write-to-searchable, query latency.

    .venv/bin/python -m bench.search_bench                              # both engines, 100k
    .venv/bin/python -m bench.search_bench --engines embedded --docs 10000,20000,100000
    .venv/bin/python -m bench.search_bench --engines opensearch --docs 20000

For each engine: starts nats-server and the search service (uvicorn, 1 worker, uvloop)
as real processes on 127.0.0.1, makes the caller a member of 3 of 20 groups, then
publishes `--docs` PostCreated CloudEvents (20-60 words, 20% private to a group) to
JetStream exactly as the posts outbox relay would (publish_async, Nats-Msg-Id), and
measures:

- indexing throughput: the posts are published as a backlog before the service starts
  (a publisher on this machine is slower than the consumer, so publishing while indexing
  would measure the publisher); then events acked per second by the content consumer
  between the first ack seen and the last (polled every 20 ms), and the service's CPU
  over that span per event; the last post must then answer in search;
- write-to-searchable: on the idle service, `--samples` single events, each from
  publish until a search for its unique word returns it (polled every 2 ms);
- write-to-searchable under ingest: the same probes while a background publisher sends
  `--ingest-rate` posts/s for `--ingest-seconds` (the issue's write goal, 1,500/s);
- query latency: `--queries` sequential GET /search of 1-3 vocabulary words, as the
  caller (so with the permission filter over their groups), p50/p99;
- the service's CPU (utime+stime from /proc) per indexed doc and per query, and its
  memory (RSS, and its peak) after indexing.

Each size in `--docs` is a fresh run (new NATS, new service, new database). The semantic
model is off unless `--semantic on` (its consumer embeds every post, a cost of its own:
bench/semantic_bench.py). The machine's load average is printed next to every figure.

OpenSearch needs a node (`bash deploy/opensearch/run.sh start`); the bench uses its
own index prefix and deletes it afterwards. Every phase is bounded by `--timeout`.
Writes bench/results/search.md and search.json (`--output` for another name).
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import secrets
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NotFoundError

from bench.gateway_bench import uvicorn_process
from shared.auth import TokenIssuer
from shared.events.bus import Bus
from shared.events.contracts import GroupMemberAdded, PostCreated
from shared.events.envelope import EventData, subject_for, wrap
from shared.ids import new_id, utcnow
from shared.natsserver import free_port, nats_server_binary, start_nats_server

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

# A Zipf-like vocabulary: a few very common words, a long tail of rare ones.
COMMON = [
    "team",
    "service",
    "deploy",
    "release",
    "data",
    "user",
    "request",
    "error",
    "design",
    "review",
]
MEDIUM = [
    "kubernetes",
    "postgres",
    "kafka",
    "terraform",
    "grafana",
    "tracing",
    "latency",
    "cache",
    "index",
    "schema",
    "migration",
    "rollout",
    "incident",
    "budget",
    "roadmap",
    "onboarding",
    "security",
    "audit",
    "backup",
    "queue",
]
RARE = [f"topic{n}" for n in range(2000)]
# The goals of issue 13 (embedded engine), printed next to each figure.
GOAL_DOCS_PER_SECOND = 5000.0
GOAL_QUERY_P99_MS = 20.0
GOAL_SEARCHABLE_P99_MS = 250.0
GOAL_RSS_MB = 150.0
GROUPS = 20
MEMBER_OF = 3
PRIVATE_SHARE = 0.2


@dataclass
class EngineFigures:
    engine: str
    semantic: str
    docs_published: int
    docs_indexed: int
    index_seconds: float
    docs_per_second: float
    publish_seconds: float
    write_to_searchable_ms: dict[str, float] = field(default_factory=dict)
    query_ms: dict[str, float] = field(default_factory=dict)
    query_count: int = 0
    searchable_under_ingest_ms: dict[str, float] = field(default_factory=dict)
    ingest_rate_achieved: float = 0.0
    cpu_ms_per_doc: float = 0.0
    cpu_ms_per_query: float = 0.0
    rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    load: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    note: str = ""


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.5), "p99": at(0.99), "max": round(ordered[-1], 2), "n": len(ordered)}


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> tuple[float, float]:
    """Resident set size now and its peak, in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            values[name] = int(rest.split()[0]) / 1024
    return round(values["VmRSS"], 1), round(values["VmHWM"], 1)


def words(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        roll = rng.random()
        pool = COMMON if roll < 0.3 else MEDIUM if roll < 0.7 else RARE
        out.append(rng.choice(pool))
    return out


def synthetic_post(rng: random.Random, groups: list[UUID], authors: list[UUID]) -> PostCreated:
    created = utcnow() - timedelta(days=rng.uniform(0, 365))
    group = rng.choice(groups) if rng.random() < PRIVATE_SHARE else None
    return PostCreated(
        content_id=new_id(),
        kind="post",
        author_id=rng.choice(authors),
        group_id=group,
        visibility="private" if group else "public",
        version=1,
        title=" ".join(words(rng, 4)).capitalize() if rng.random() < 0.5 else None,
        body=" ".join(words(rng, rng.randint(20, 60))),
        tags=[rng.choice(MEDIUM)] if rng.random() < 0.5 else [],
        mentions=[],
        parent_id=None,
        thread_id=None,
        created_at=created,
        updated_at=created,
    )


def encode(data: EventData) -> tuple[str, bytes, dict[str, str]]:
    envelope = wrap(data, source="/knowflow/bench")
    subject = subject_for(envelope.type, envelope.audience)
    return subject, envelope.model_dump_json().encode(), {"Nats-Msg-Id": str(envelope.id)}


async def publish_all(nats_url: str, messages: list[tuple[str, bytes, dict[str, str]]]) -> None:
    """As the outbox relay does: publish_async, gathered per batch."""
    bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="bench-publisher")
    try:
        for start in range(0, len(messages), 1000):
            futures = [
                await bus.js.publish_async(subject, payload, headers=headers)
                for subject, payload, headers in messages[start : start + 1000]
            ]
            await asyncio.gather(*futures)
    finally:
        await bus.close()


async def consumer_settled(nats_url: str) -> bool:
    bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="bench-probe")
    try:
        info = await bus.js.consumer_info("KNOWFLOW", "search-content")
        return not info.num_pending and not info.num_ack_pending
    finally:
        await bus.close()


@contextmanager
def jwks_server(issuer: TokenIssuer) -> Iterator[str]:
    """Identity's JWKS endpoint, served for the search service to verify bench tokens."""
    body = json.dumps(issuer.jwks()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


def wait_ready(base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base} not ready within {timeout}s")


def run_engine(
    engine: str,
    docs: int,
    *,
    args: argparse.Namespace,
    issuer: TokenIssuer,
    jwks_url: str,
    tmp: Path,
) -> EngineFigures:
    rng = random.Random(42)
    workdir = tmp / f"{engine}-{docs}"
    workdir.mkdir()
    nats_port, http_port = free_port(), free_port()
    nats = start_nats_server(workdir / "nats", port=nats_port)
    nats_url = f"nats://127.0.0.1:{nats_port}"
    prefix = f"bench-{secrets.token_hex(4)}"
    env = {
        "KNOWFLOW_DATABASE_URL": f"sqlite:///{workdir / 'search.db'}",
        "KNOWFLOW_NATS_URL": nats_url,
        "KNOWFLOW_SEARCH_URL": args.opensearch_url if engine == "opensearch" else "",
        "KNOWFLOW_SEARCH_INDEX_PREFIX": prefix,
        "KNOWFLOW_JWKS_URL": jwks_url,
        "KNOWFLOW_LOG_LEVEL": "WARNING",
    }
    if args.semantic == "off":
        env["KNOWFLOW_SEMANTIC_MODEL"] = "off"
    base = f"http://127.0.0.1:{http_port}"
    me = new_id()
    token = issuer.issue(user_id=me, handle="bench")
    headers = {"Authorization": f"Bearer {token}"}
    groups = [new_id() for _ in range(GROUPS)]
    authors = [new_id() for _ in range(500)]
    label = f"[{engine} {docs}]"
    memberships = [
        encode(GroupMemberAdded(group_id=group, visibility="private", user_id=me, role="member"))
        for group in groups[:MEMBER_OF]
    ]
    print(f"{label} generating {docs} events", flush=True)
    posts = [synthetic_post(rng, groups, authors) for _ in range(docs)]
    last_word = f"lastdoc{secrets.token_hex(6)}"
    # Public: a last post private to a group the caller is not in is never found.
    posts[-1] = posts[-1].model_copy(
        update={
            "body": f"{posts[-1].body} {last_word}",
            "group_id": None,
            "visibility": "public",
        }
    )
    messages = [encode(post) for post in posts]

    print(f"{label} publishing a backlog of {docs} events before the service starts", flush=True)
    began_publishing = time.monotonic()
    asyncio.run(publish_all(nats_url, [*memberships, *messages]))
    published = time.monotonic() - began_publishing
    try:
        with uvicorn_process(
            "services.search.main:app",
            port=http_port,
            env=env,
            workers=1,
            log=workdir / "search.log",
        ) as process:
            print(f"{label} indexing", flush=True)
            drain = asyncio.run(drained(nats_url, process.pid, args.timeout))
            wait_ready(base, 60)
            client = httpx.Client(base_url=base, headers=headers, timeout=30)
            note = "" if drain.settled else f"stopped after {args.timeout}s"
            while not note and not client.get("/search", params={"q": last_word}).json().get(
                "items"
            ):
                time.sleep(0.05)
            elapsed = drain.last_at - drain.first_at
            cpu_indexing = drain.last_cpu - drain.first_cpu
            indexed = docs if not note else count_indexed(engine, workdir, args, prefix)
            rss, peak = memory_mb(process.pid)
            figures = EngineFigures(
                engine=engine,
                semantic=args.semantic,
                docs_published=docs,
                docs_indexed=indexed,
                index_seconds=round(elapsed, 2),
                docs_per_second=round(drain.events / max(elapsed, 1e-3), 1),
                publish_seconds=round(published, 2),
                cpu_ms_per_doc=round(cpu_indexing * 1000 / max(drain.events, 1), 3),
                rss_mb=rss,
                peak_rss_mb=peak,
                note=note,
            )
            figures.load["indexing"] = load_average()
            print(
                f"{label} {figures.docs_per_second} docs/s (goal >= {GOAL_DOCS_PER_SECOND:.0f}),"
                f" {figures.cpu_ms_per_doc} ms CPU/doc, RSS {rss} MB (peak {peak}; goal <="
                f" {GOAL_RSS_MB:.0f}), load {figures.load['indexing']}",
                flush=True,
            )
            if note:
                wait_until_settled(nats_url, 600)

            # One connection for every probe: timed from its publish, not from a connect.
            probe_loop = asyncio.new_event_loop()
            probe_bus = probe_loop.run_until_complete(
                Bus.connect(nats_url, stream="KNOWFLOW", name="bench-probes")
            )

            def probe() -> float:
                word = f"sample{secrets.token_hex(6)}"
                item = synthetic_post(rng, groups, authors)
                item = item.model_copy(update={"body": f"{item.body} {word}", "group_id": None})
                item = item.model_copy(update={"visibility": "public"})
                subject, payload, message_headers = encode(item)
                sent = time.monotonic()
                try:
                    probe_loop.run_until_complete(
                        probe_bus.js.publish(subject, payload, headers=message_headers)
                    )
                except NatsTimeoutError:  # JetStream too busy to ack: counted, not fatal
                    figures.errors += 1
                    return (time.monotonic() - sent) * 1000
                while not client.get("/search", params={"q": word}).json().get("items"):
                    if time.monotonic() - sent > 30:
                        figures.errors += 1
                        break
                    time.sleep(0.002)
                return (time.monotonic() - sent) * 1000

            latencies = [probe() for _ in range(args.samples)]
            figures.write_to_searchable_ms = percentiles(latencies)
            figures.load["idle_probes"] = load_average()
            print(
                f"{label} write->searchable idle {figures.write_to_searchable_ms},"
                f" load {figures.load['idle_probes']}",
                flush=True,
            )

            if args.ingest_seconds > 0:
                ingest = [
                    encode(synthetic_post(rng, groups, authors))
                    for _ in range(int(args.ingest_rate * args.ingest_seconds))
                ]
                # Its own process: in a thread it would share the GIL with the probes.
                sent_count = multiprocessing.get_context("spawn").Value("l", 0)
                publisher = multiprocessing.get_context("spawn").Process(
                    target=paced_publisher, args=(nats_url, ingest, args.ingest_rate, sent_count)
                )
                began_ingest = time.monotonic()
                publisher.start()
                loaded = []
                try:
                    while publisher.is_alive():
                        loaded.append(probe())
                        time.sleep(0.05)
                finally:
                    publisher.join(timeout=args.ingest_seconds + 30)
                    if publisher.is_alive():
                        publisher.terminate()
                figures.ingest_rate_achieved = round(
                    sent_count.value / (time.monotonic() - began_ingest), 1
                )
                figures.searchable_under_ingest_ms = percentiles(loaded)
                figures.load["ingest_probes"] = load_average()
                print(
                    f"{label} write->searchable at {figures.ingest_rate_achieved} posts/s:"
                    f" {figures.searchable_under_ingest_ms} (goal p99 <="
                    f" {GOAL_SEARCHABLE_P99_MS:.0f}), load {figures.load['ingest_probes']}",
                    flush=True,
                )
                wait_until_settled(nats_url, 600)
            probe_loop.run_until_complete(probe_bus.close())
            probe_loop.close()

            query_rng = random.Random(7)
            pools = [COMMON, MEDIUM, RARE[:200]]
            for _ in range(20):  # warm-up
                client.get("/search", params={"q": query_rng.choice(COMMON)})
            timings = []
            cpu_before = cpu_seconds(process.pid)
            for _ in range(args.queries):
                terms = [
                    query_rng.choice(query_rng.choice(pools))
                    for _ in range(query_rng.randint(1, 3))
                ]
                began = time.perf_counter()
                response = client.get("/search", params={"q": " ".join(terms), "limit": 20})
                timings.append((time.perf_counter() - began) * 1000)
                if response.status_code != 200:
                    figures.errors += 1
            figures.cpu_ms_per_query = round(
                (cpu_seconds(process.pid) - cpu_before) * 1000 / max(len(timings), 1), 3
            )
            figures.query_ms = percentiles(timings)
            figures.query_count = len(timings)
            figures.load["queries"] = load_average()
            print(
                f"{label} query {figures.query_ms} (goal p99 <= {GOAL_QUERY_P99_MS:.0f}),"
                f" {figures.cpu_ms_per_query} ms CPU/query, load {figures.load['queries']}",
                flush=True,
            )
            client.close()
            return figures
    finally:
        nats.terminate()
        nats.wait(timeout=10)
        if engine == "opensearch":
            drop_prefix(args.opensearch_url, prefix)


def paced_publisher(
    nats_url: str, messages: list[tuple[str, bytes, dict[str, str]]], rate: float, sent: Any
) -> None:
    """Publish at `rate` messages/s in ticks of 20 ms, as a steady write load would."""

    async def publish() -> None:
        bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="bench-ingest")
        try:
            began = time.monotonic()
            while sent.value < len(messages):
                due = min(len(messages), int((time.monotonic() - began) * rate) + 1)
                futures = [
                    await bus.js.publish_async(subject, payload, headers=headers)
                    for subject, payload, headers in messages[sent.value : due]
                ]
                await asyncio.gather(*futures)
                sent.value = due
                await asyncio.sleep(0.02)
        finally:
            await bus.close()

    asyncio.run(publish())


@dataclass
class Drain:
    """The content consumer working through the backlog: first and last acks seen."""

    first_at: float = 0.0
    first_cpu: float = 0.0
    last_at: float = 0.0
    last_cpu: float = 0.0
    events: int = 0
    settled: bool = False


async def drained(nats_url: str, pid: int, timeout: float) -> Drain:
    """Poll the content consumer every 20 ms until the backlog is acked: the rate between
    the first ack seen and the last counts the consumer alone, not the service's start."""
    bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="bench-probe")
    drain = Drain()
    first_seq = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                info = await bus.js.consumer_info("KNOWFLOW", "search-content")
            except NotFoundError:
                await asyncio.sleep(0.02)
                continue
            now, cpu = time.monotonic(), cpu_seconds(pid)
            acked = info.ack_floor.consumer_seq or 0
            if acked and not first_seq:
                first_seq, drain.first_at, drain.first_cpu = acked, now, cpu
            if first_seq:
                drain.last_at, drain.last_cpu, drain.events = now, cpu, acked - first_seq
            if first_seq and not info.num_pending and not info.num_ack_pending:
                drain.settled = True
                break
            await asyncio.sleep(0.02)
    finally:
        await bus.close()
    return drain


def wait_until_settled(nats_url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not asyncio.run(consumer_settled(nats_url)) and time.monotonic() < deadline:
        time.sleep(1)


def count_indexed(engine: str, workdir: Path, args: argparse.Namespace, prefix: str) -> int:
    """How many documents the engine holds (for a run stopped by the time bound)."""
    if engine == "opensearch":
        response = httpx.get(f"{args.opensearch_url}/{prefix}-content/_count", timeout=30)
        return int(response.json()["count"])
    with sqlite3.connect(workdir / "search.db") as connection:
        return int(connection.execute("SELECT count(*) FROM search_document").fetchone()[0])


def drop_prefix(url: str, prefix: str) -> None:
    names = httpx.get(f"{url}/{prefix}-*", timeout=30).json()
    for name in names:
        httpx.delete(f"{url}/{name}", timeout=60)


def versions(args: argparse.Namespace, engines: list[str]) -> dict[str, str]:
    found = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for package in ("fastapi", "uvicorn", "nats-py", "opensearch-py", "sqlmodel"):
        found[package] = version(package)
    nats = subprocess.run([nats_server_binary(), "--version"], capture_output=True, text=True)
    found["nats-server"] = nats.stdout.strip()
    if "opensearch" in engines:
        info = httpx.get(args.opensearch_url, timeout=10).json()
        found["opensearch"] = info["version"]["number"]
    return found


def write_results(
    figures: list[EngineFigures], args: argparse.Namespace, meta: dict[str, Any]
) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {**meta, "results": [asdict(figure) for figure in figures]}
    (RESULTS / f"{args.output}.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Search benchmark: the real event path",
        "",
        f"Date: {meta['date']}. Machine: {meta['machine']}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        f"Config: {args.docs} PostCreated events (20-60 words, {int(PRIVATE_SHARE * 100)}% "
        f"private to one of {GROUPS} groups), published to JetStream with publish_async; "
        "search service = uvicorn 1 worker (uvloop), SQLite for its own tables; caller in "
        f"{MEMBER_OF} groups. Write-to-searchable: {args.samples} single events on the idle "
        f"service, polled every 2 ms. Queries: {args.queries} sequential GET /search of 1-3 "
        "words over HTTP (limit 20), permission filter included.",
        "",
        f"Write-to-searchable under ingest: probes while {args.ingest_rate:.0f} posts/s "
        f"are published for {args.ingest_seconds:.0f}s. Semantic model: {args.semantic}. "
        "CPU = the search service's utime+stime; load = the machine's 1/5/15-min load "
        "average at the end of each phase (2 cores, shared).",
        "",
        f"| engine | docs | indexed | docs/s (goal >= {GOAL_DOCS_PER_SECOND:.0f}) "
        "| CPU ms/doc | write→searchable idle p50 / p99 ms "
        f"| under ingest p50 / p99 ms (goal p99 <= {GOAL_SEARCHABLE_P99_MS:.0f}) "
        f"| query p50 / p99 ms (goal p99 <= {GOAL_QUERY_P99_MS:.0f}) | CPU ms/query "
        f"| RSS / peak MB (goal <= {GOAL_RSS_MB:.0f}) | load (indexing; queries) | errors | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        w, q, u = f.write_to_searchable_ms, f.query_ms, f.searchable_under_ingest_ms
        lines.append(
            f"| {f.engine} | {f.docs_published} | {f.docs_indexed} in {f.index_seconds}s "
            f"| {f.docs_per_second} | {f.cpu_ms_per_doc} | {w.get('p50')} / {w.get('p99')} "
            f"| {u.get('p50')} / {u.get('p99')} at {f.ingest_rate_achieved}/s "
            f"| {q.get('p50')} / {q.get('p99')} | {f.cpu_ms_per_query} "
            f"| {f.rss_mb} / {f.peak_rss_mb} "
            f"| {f.load.get('indexing')}; {f.load.get('queries')} | {f.errors} | {f.note} |"
        )
    (RESULTS / f"{args.output}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", default="embedded,opensearch")
    parser.add_argument("--docs", default="100000", help="sizes, comma-separated")
    parser.add_argument("--semantic", choices=["on", "off"], default="off")
    parser.add_argument("--ingest-rate", type=float, default=1500.0)
    parser.add_argument("--ingest-seconds", type=float, default=20.0)
    parser.add_argument("--output", default="search", help="results file name")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=900.0, help="bound per indexing phase")
    parser.add_argument(
        "--opensearch-url",
        default=os.environ.get("KNOWFLOW_TEST_OPENSEARCH_URL", "http://127.0.0.1:9200"),
    )
    args = parser.parse_args()
    engines = [name.strip() for name in args.engines.split(",") if name.strip()]
    sizes = [int(size) for size in args.docs.split(",") if size.strip()]
    issuer = TokenIssuer(
        Ed25519PrivateKey.generate(),
        issuer="knowflow-identity",
        audience="knowflow",
        ttl_seconds=3600,  # the verifier refuses longer-lived tokens
    )
    figures = []
    with (
        tempfile.TemporaryDirectory(prefix="knowflow-search-bench-") as tmp,
        jwks_server(issuer) as jwks_url,
    ):
        for engine in engines:
            for docs in sizes:
                figures.append(
                    run_engine(
                        engine, docs, args=args, issuer=issuer, jwks_url=jwks_url, tmp=Path(tmp)
                    )
                )
                print(json.dumps(asdict(figures[-1])), flush=True)
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "versions": versions(args, engines),
        "config": vars(args),
    }
    write_results(figures, args, meta)
    print((RESULTS / f"{args.output}.md").read_text())


if __name__ == "__main__":
    main()
