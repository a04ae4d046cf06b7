"""The write path and the authenticated read path: POST /posts and GET /users/me.

    .venv/bin/python -m bench.ingest_bench                 # ~2 min
    .venv/bin/python -m bench.ingest_bench --duration 5 --runs 1

Starts the whole platform as real processes on 127.0.0.1 (`deploy.launch`: NATS, the
five services on SQLite, the web app and the gateway), registers a user, then measures:

- ingest: `wrk -t1 -c64` POSTing distinct posts (a tag, a mention, a unique word each)
  through the gateway: posts/s, p50/p99, the posts service's CPU per post (utime + stime
  from /proc around the run / posts), how far the outbox falls behind (unsent rows,
  sampled every 100 ms), and after the last write how long until the outbox is empty,
  the search consumer has acked everything and the last post is found by a search;
- CPU per post at 1 connection (`wrk -c1`, through the gateway);
- `GET /users/me` on identity directly at 64 connections: req/s and identity's CPU per
  request.

The gateway's rate limits are lifted (one wrk client is far above any quota). Every
figure is printed next to its goal (issue 13) and the load average. Writes
bench/results/ingest.md and ingest.json.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import sqlite3
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench.gateway_bench import Run, cpu_seconds, register, run_wrk, versions
from bench.search_bench import consumer_settled
from deploy.launch import Platform, Ports, running_platform

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

GOALS = {
    "ingest_posts_per_s": ">= 1,500 posts/s",
    "ingest_p99_ms": "<= 100 ms",
    "post_cpu_ms_1conn": "<= 0.6 ms",
    "users_me_rps": ">= 5,000 req/s",
    "searchable_after_s": "write -> searchable p99 <= 250 ms (issue 13, search slice)",
}

# Each request a new post: a counter makes the body unique; a tag and a mention make the
# service write a tag row and parse a mention, as real posts do.
POST_SCRIPT = """
local counter = 0
local token = "%s"
function request()
  counter = counter + 1
  local body = '{"body": "ingest run %s post ' .. counter ..
    ' about #benchmarks and latency with @bench, word w' .. counter .. 'x"}'
  return wrk.format("POST", "/api/v1/posts", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, body)
end
"""


@dataclass
class Phase:
    name: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_ms_per_request: float
    load: str
    runs: list[float] = field(default_factory=list)


@dataclass
class Backlog:
    outbox_max_unsent: int = 0
    outbox_samples: int = 0
    outbox_drained_after_s: float = float("nan")
    searchable_after_s: float = float("nan")
    # CPU per post of every process, from the load's start until everything was searchable.
    cpu_ms_per_post: dict[str, float] = field(default_factory=dict)
    note: str = ""


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def unsent(database: Path) -> int:
    """Outbox rows not yet published, read from the posts database (read-only)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
        return int(
            connection.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]
        )


class OutboxSampler(threading.Thread):
    """Samples the posts outbox's unsent rows every 100 ms while the load runs."""

    def __init__(self, database: Path) -> None:
        super().__init__(daemon=True)
        self.database = database
        self.samples: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            with contextlib.suppress(sqlite3.Error):
                self.samples.append(unsent(self.database))


def wrk_post(
    gateway: str, *, script: Path, connections: int, duration: int, pid: int, name: str
) -> Phase:
    """One wrk run of POST /posts; the posts service's CPU per post around it."""
    before = cpu_seconds(pid)
    run = run_wrk_script(gateway + "/api/v1/posts", script, connections, duration)
    posts = run.requests - run.errors
    return phase_of(name, connections, run, (cpu_seconds(pid) - before) / max(posts, 1) * 1000)


def phase_of(name: str, connections: int, run: Run, cpu_ms: float) -> Phase:
    """A wrk run's figures, with the CPU per request and the load at its end."""
    return Phase(
        name,
        connections,
        run.rps,
        run.p50_ms,
        run.p99_ms,
        run.errors,
        run.requests,
        cpu_ms,
        load_average(),
    )


def run_wrk_script(url: str, script: Path, connections: int, duration: int) -> Run:
    return run_wrk(url, token=None, duration=duration, connections=connections, script=script)


def until(check: Any, timeout: float, interval: float = 0.02) -> float:
    """Seconds until `check()` is true (NaN if it never was within `timeout`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(interval)
    return float("nan")


def ingest(
    running: Platform, *, token: str, run_id: str, args: argparse.Namespace, work: Path
) -> tuple[Phase, Backlog]:
    gateway = running.gateway_url
    posts_pid = running.processes["posts"].pid
    database = running.var_dir / "posts.db"
    script = work / "post.lua"
    script.write_text(POST_SCRIPT % (token, run_id))
    # Warm-up: code paths, caches, the first pages of the database.
    run_wrk_script(gateway + "/api/v1/posts", script, args.connections, 2)
    settle_outbox(database, running.url("search"), running.ports.nats)
    runs = []
    backlog = Backlog()
    for _ in range(args.runs):
        sampler = OutboxSampler(database)
        sampler.start()
        cpu_before = platform_cpu_seconds(running)
        phase = wrk_post(
            gateway,
            script=script,
            connections=args.connections,
            duration=args.duration,
            pid=posts_pid,
            name="ingest",
        )
        ended = time.monotonic()
        sampler.stop.set()
        sampler.join()
        # The last post, written after the load: searchable once everything before it is.
        marker = f"marker{secrets.token_hex(6)}"
        httpx.post(
            f"{gateway}/api/v1/posts",
            json={"body": f"the last post {marker}"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).raise_for_status()
        backlog = Backlog(
            outbox_max_unsent=max(sampler.samples, default=0),
            outbox_samples=len(sampler.samples),
        )
        backlog.outbox_drained_after_s = until(lambda: unsent(database) == 0, args.timeout)
        waited = until(partial(searchable, running, token, marker), args.timeout, 0.05)
        backlog.searchable_after_s = time.monotonic() - ended if waited == waited else float("nan")
        if waited != waited:
            backlog.note = f"not searchable within {args.timeout}s"
        posts = max(phase.requests - phase.errors, 1)
        backlog.cpu_ms_per_post = {
            name: round((seconds - cpu_before[name]) * 1000 / posts, 2)
            for name, seconds in platform_cpu_seconds(running).items()
        }
        print(
            f"ingest  c{args.connections}: {phase.rps:7.0f} posts/s (goal {GOALS['ingest_posts_per_s']})"
            f"  p50 {phase.p50_ms:7.1f} ms  p99 {phase.p99_ms:7.1f} ms (goal {GOALS['ingest_p99_ms']})"
            f"  errors {phase.errors}  posts CPU {phase.cpu_ms_per_request:.2f} ms/post"
            f"  outbox max unsent {backlog.outbox_max_unsent}, drained {backlog.outbox_drained_after_s:.2f} s"
            f"  all searchable {backlog.searchable_after_s:.2f} s after the load  load {phase.load}"
            f"\n        CPU per post until searchable: {cpu_per_post_text(backlog.cpu_ms_per_post)}",
            flush=True,
        )
        runs.append(phase)
    return median_phase(runs), backlog


def platform_cpu_seconds(running: Platform) -> dict[str, float]:
    """CPU seconds used so far by each process of the platform (nats-server included)."""
    return {name: cpu_seconds(process.pid) for name, process in running.processes.items()}


def cpu_per_post_text(by_process: dict[str, float]) -> str:
    """The processes that used CPU, most first, and their sum."""
    used = sorted(((ms, name) for name, ms in by_process.items() if ms >= 0.01), reverse=True)
    parts = ", ".join(f"{name} {ms:.2f}" for ms, name in used)
    return f"{parts}; all {sum(by_process.values()):.2f} ms"


def searchable(running: Platform, token: str, word: str) -> bool:
    """The search finds `word` and the search consumer has acked every event."""
    found = httpx.get(
        running.gateway_url + "/api/v1/search",
        params={"q": word},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    nats_url = f"nats://127.0.0.1:{running.ports.nats}"
    return bool(found.json().get("items")) and asyncio.run(consumer_settled(nats_url))


def settle_outbox(database: Path, search_url: str, nats_port: int, timeout: float = 120) -> None:
    """Wait until the previous load's events are published and consumed."""
    nats_url = f"nats://127.0.0.1:{nats_port}"
    until(lambda: unsent(database) == 0 and asyncio.run(consumer_settled(nats_url)), timeout, 0.2)


def median_phase(runs: list[Phase]) -> Phase:
    first = runs[0]
    return Phase(
        first.name,
        first.connections,
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.errors for r in runs),
        sum(r.requests for r in runs),
        statistics.median(r.cpu_ms_per_request for r in runs),
        "; ".join(r.load for r in runs),
        [r.rps for r in runs],
    )


def one_connection(
    running: Platform, *, token: str, run_id: str, args: argparse.Namespace, work: Path
) -> Phase:
    script = work / "post1.lua"
    script.write_text(POST_SCRIPT % (token, run_id + "c1"))
    runs = [
        wrk_post(
            running.gateway_url,
            script=script,
            connections=1,
            duration=args.duration,
            pid=running.processes["posts"].pid,
            name="post-1conn",
        )
        for _ in range(args.runs)
    ]
    phase = median_phase(runs)
    print(
        f"post    c1:  {phase.rps:7.0f} posts/s  p50 {phase.p50_ms:.2f} ms"
        f"  posts CPU {phase.cpu_ms_per_request:.2f} ms/post (goal {GOALS['post_cpu_ms_1conn']})"
        f"  load {phase.load}",
        flush=True,
    )
    return phase


def users_me(running: Platform, *, token: str, args: argparse.Namespace) -> Phase:
    url = running.url("identity") + "/users/me"
    pid = running.processes["identity"].pid
    run_wrk(url, token=token, duration=2, connections=args.connections)
    runs = []
    for _ in range(args.runs):
        before = cpu_seconds(pid)
        run = run_wrk(url, token=token, duration=args.duration, connections=args.connections)
        cpu_ms = (cpu_seconds(pid) - before) / max(run.requests, 1) * 1000
        runs.append(phase_of("users-me", args.connections, run, cpu_ms))
    phase = median_phase(runs)
    print(
        f"users/me c{args.connections}: {phase.rps:7.0f} req/s (goal {GOALS['users_me_rps']})"
        f"  p50 {phase.p50_ms:.1f} ms  p99 {phase.p99_ms:.1f} ms  errors {phase.errors}"
        f"  identity CPU {phase.cpu_ms_per_request:.2f} ms/req  load {phase.load}",
        flush=True,
    )
    return phase


def write_results(
    phases: list[Phase], backlog: Backlog, config: dict[str, Any], path: Path
) -> None:
    lines = [
        "# Ingest benchmark: POST /posts and GET /users/me",
        "",
        f"Date: {config['date']}  ",
        f"Machine: {config['cpus']} CPUs, {config['platform']}  ",
        f"Versions: {', '.join(f'{k} {v}' for k, v in config['versions'].items())}  ",
        f"Load: `wrk -t1 -d{config['duration']}s`, median of {config['runs']} runs; wrk, the "
        "gateway, the five services, the web app and nats-server share the machine; SQLite.  ",
        f"Worker counts: {config['workers']}",
        "",
        "| what | conns | req/s | p50 ms | p99 ms | errors | CPU ms / request | load (1/5/15) | runs req/s | goal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    goal = {
        "ingest": f"{GOALS['ingest_posts_per_s']}, p99 {GOALS['ingest_p99_ms']}",
        "post-1conn": f"CPU {GOALS['post_cpu_ms_1conn']}",
        "users-me": GOALS["users_me_rps"],
    }
    for p in phases:
        runs = ", ".join(f"{rps:.0f}" for rps in p.runs)
        lines.append(
            f"| {p.name} | {p.connections} | {p.rps:.0f} | {p.p50_ms:.1f} | {p.p99_ms:.1f} | "
            f"{p.errors} | {p.cpu_ms_per_request:.2f} | {p.load} | {runs} | {goal[p.name]} |"
        )
    if backlog.outbox_samples:  # only the ingest phase watches the outbox and the index
        lines += [
            "",
            "During the last ingest run: the posts outbox held at most "
            f"{backlog.outbox_max_unsent} unsent rows ({backlog.outbox_samples} samples, every "
            f"100 ms); it was empty {backlog.outbox_drained_after_s:.2f} s after the load "
            f"ended, and everything was searchable {backlog.searchable_after_s:.2f} s after it. "
            f"{backlog.note}",
            "",
            "CPU per post in each process, from the start of that run until everything was "
            f"searchable (every consumer's share included): {cpu_per_post_text(backlog.cpu_ms_per_post)}"
            f" per post. {config['cpus']} cores give {config['cpus'] * 1000} ms of CPU a second, "
            "so the platform on this machine tops out near "
            f"{config['cpus'] * 1000 / max(sum(backlog.cpu_ms_per_post.values()), 0.01):.0f} posts/s.",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    payload = {
        **config,
        "goals": GOALS,
        "phases": [asdict(p) for p in phases],
        "backlog": asdict(backlog),
    }
    path.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=120.0, help="bound per wait")
    parser.add_argument("--phases", default="ingest,post-1conn,users-me")
    parser.add_argument("--workdir", type=Path, help="keep databases and logs here")
    parser.add_argument("--output", type=Path, default=RESULTS / "ingest.md")
    args = parser.parse_args()
    chosen = {name.strip() for name in args.phases.split(",")}
    config: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "versions": {**versions(), "sqlite": sqlite3.sqlite_version},
        "runs": args.runs,
        "duration": args.duration,
        "connections": args.connections,
        "workers": os.environ.get("KNOWFLOW_WORKERS", "1 per process"),
    }
    extra = {
        "KNOWFLOW_LOG_LEVEL": "WARNING",
        **{
            f"KNOWFLOW_RATE_LIMIT_{route_class}": '{"limit": 100000000, "window": 1}'
            for route_class in ("READS", "WRITES", "SEARCH", "AUTH")
        },
    }
    phases: list[Phase] = []
    backlog = Backlog()
    run_id = secrets.token_hex(3)
    with tempfile.TemporaryDirectory(prefix="knowflow-ingest-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with running_platform(work / "var", Ports.free(), extra_env=extra) as running:
            token = register(f"{running.gateway_url}/api/v1")
            print(
                f"platform up; pids { ({n: p.pid for n, p in running.processes.items()}) }",
                flush=True,
            )
            if "ingest" in chosen:
                phase, backlog = ingest(running, token=token, run_id=run_id, args=args, work=work)
                phases.append(phase)
            if "post-1conn" in chosen:
                phases.append(
                    one_connection(running, token=token, run_id=run_id, args=args, work=work)
                )
            if "users-me" in chosen:
                phases.append(users_me(running, token=token, args=args))
    write_results(phases, backlog, config, args.output)
    print(args.output.read_text())


if __name__ == "__main__":
    main()
