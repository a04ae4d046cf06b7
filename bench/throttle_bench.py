"""Throttling: a bystander's p50 during a flood, the limiter's cost, identity's memory.

    .venv/bin/python -m bench.throttle_bench            # ~2 minutes

Starts nats-server, identity (uvicorn, 1 worker) and the gateway as real processes on
127.0.0.1, registers a bystander and a flooder, then:

1. Bystander p50: `n` sequential GET /api/v1/users/me through the gateway, quiet and while
   the flooder runs `wrk -c{connections}` on the same route with its own token; with the
   limiter off (today) and on (default quotas). Goal: flood p50 within 2x of quiet.
2. Added latency of the gateway per request, limiter off and on: bystander p50 through the
   gateway minus p50 straight to identity.
3. What a shared counter costs: a JetStream KV compare-and-set per request (get + update,
   what a per-request shared bucket needs) vs this gateway's local bucket (`take`).
4. Identity's memory under 16 concurrent logins, hashing unbounded (before) and bounded
   (after): peak RSS (VmHWM) read from /proc.

Writes bench/results/throttle.md and throttle.json.
"""

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client

from bench.gateway_bench import RESULTS, run_wrk, uvicorn_process, versions
from gateway.ratelimit import Policy, SharedBuckets
from shared.natsserver import free_port, start_nats_server

PASSWORD = "correct horse battery staple"
# label, limiter enabled, seconds a 429 is held
VARIANTS = (
    ("limiter_off", "false", "0"),
    ("limiter_on_no_delay", "true", "0"),
    ("limiter_on", "true", "0.1"),
)


def register(base: str, handle: str) -> str:
    response = httpx.post(
        f"{base}/auth/register",
        json={
            "handle": handle,
            "email": f"{handle}@example.org",
            "password": PASSWORD,
            "display_name": handle.title(),
        },
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def p50_ms(url: str, token: str, count: int) -> tuple[float, int]:
    """Median latency of `count` sequential GETs on one keep-alive connection, and non-200s."""
    latencies = []
    refused = 0
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for _ in range(10):
            client.get(url)
        for _ in range(count):
            started = time.perf_counter()
            response = client.get(url)
            latencies.append((time.perf_counter() - started) * 1000)
            refused += response.status_code != 200
    return statistics.median(latencies), refused


def paired(gateway_url: str, direct_url: str, token: str, count: int) -> tuple[float, float]:
    """p50 straight to identity, and the p50 of (through the gateway - straight) per pair.

    Alternating the two in pairs cancels most of the noise of a machine shared with others.
    """
    headers = {"Authorization": f"Bearer {token}"}
    direct_ms, added_ms = [], []
    with httpx.Client(headers=headers, timeout=30) as via, httpx.Client(headers=headers) as to:
        for _ in range(count):
            started = time.perf_counter()
            to.get(direct_url)
            middle = time.perf_counter()
            via.get(gateway_url)
            ended = time.perf_counter()
            direct_ms.append((middle - started) * 1000)
            added_ms.append(((ended - middle) - (middle - started)) * 1000)
    return statistics.median(direct_ms), statistics.median(added_ms)


def bystander(
    gateway: str,
    direct: str,
    bystander_token: str,
    flood_token: str,
    *,
    count: int,
    flood: int,
    rounds: int,
) -> dict[str, Any]:
    """Quiet then flooded bystander p50, `rounds` times over (medians: the machine is shared)."""
    url = gateway + "/api/v1/users/me"
    direct_p50, added = paired(url, direct + "/users/me", bystander_token, count)
    quiet_runs, flood_runs, refused = [], [], 0
    rps, non_2xx = [], 0
    for _ in range(rounds):
        quiet, quiet_refused = p50_ms(url, bystander_token, count)
        with ThreadPoolExecutor(1) as pool:
            flooding = pool.submit(run_wrk, url, token=flood_token, duration=flood, connections=16)
            # The flooder's own quota (600 reads) goes in its first second or two: measure
            # the long part of a flood, when it is being refused.
            time.sleep(4.0)
            during, during_refused = p50_ms(url, bystander_token, count)
            wrk = flooding.result()
        quiet_runs.append(quiet)
        flood_runs.append(during)
        refused += quiet_refused + during_refused
        rps.append(wrk.rps)
        non_2xx += wrk.errors
    quiet, during = statistics.median(quiet_runs), statistics.median(flood_runs)
    return {
        "quiet_p50_ms": round(quiet, 3),
        "flood_p50_ms": round(during, 3),
        "ratio": round(during / quiet, 2),
        "quiet_runs_ms": [round(value, 2) for value in quiet_runs],
        "flood_runs_ms": [round(value, 2) for value in flood_runs],
        "bystander_refused": refused,
        "direct_p50_ms": round(direct_p50, 3),
        "gateway_added_ms": round(added, 3),
        "flood_rps": round(statistics.median(rps)),
        "flood_non_2xx": non_2xx,
    }


async def kv_costs(nats_url: str, count: int) -> dict[str, float]:
    """µs per shared-counter CAS (get + update) vs per local bucket decision."""
    client = Client()
    await client.connect(nats_url)
    try:
        kv = await client.jetstream().create_key_value(bucket="bench_ratelimit", history=1)
        await kv.put("reads.client", b"100 0")
        cas = []
        for _ in range(count):
            started = time.perf_counter()
            entry = await kv.get("reads.client")
            await kv.update("reads.client", b"99 0", last=entry.revision)
            cas.append((time.perf_counter() - started) * 1e6)
    finally:
        await client.close()
    buckets = SharedBuckets(nats_url, kv_bucket="unused", ttl=60, sync_seconds=1)
    policy = Policy("reads", 10**9, 60)
    clients = [f"u-{index}" for index in range(1000)]
    started = time.perf_counter()
    for index in range(100_000):
        await buckets.take(policy, clients[index % 1000])
    local = (time.perf_counter() - started) / 100_000 * 1e6
    return {
        "cas_per_request_p50_us": round(statistics.median(cas), 1),
        "cas_per_request_p99_us": round(sorted(cas)[int(len(cas) * 0.99)], 1),
        "local_take_us": round(local, 2),
    }


def peak_rss_mib(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def identity_memory(work: Path, env: dict[str, str], concurrency: int) -> dict[str, Any]:
    port = free_port()
    db = work / f"identity-memory-{concurrency}.db"
    env = {
        **env,
        "KNOWFLOW_DATABASE_URL": f"sqlite:///{db}",
        "KNOWFLOW_PASSWORD_HASH_CONCURRENCY": str(concurrency),
        "KNOWFLOW_PASSWORD_HASH_QUEUE": "64",
        "KNOWFLOW_PASSWORD_HASH_WAIT_SECONDS": "60",
    }
    base = f"http://127.0.0.1:{port}"
    with uvicorn_process(
        "services.identity.main:app", port=port, env=env, workers=1, log=work / "memory.log"
    ) as process:
        register(base, "memory")
        idle, _ = peak_rss_mib(process.pid)
        body = {"login": "memory", "password": PASSWORD}
        started = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            statuses = list(
                pool.map(
                    lambda _: httpx.post(base + "/auth/login", json=body, timeout=120).status_code,
                    range(48),
                )
            )
        elapsed = time.perf_counter() - started
        _, peak = peak_rss_mib(process.pid)
    return {
        "hash_concurrency": concurrency,
        "idle_rss_mib": round(idle),
        "peak_rss_mib": round(peak),
        "logins": len(statuses),
        "logins_ok": statuses.count(200),
        "seconds": round(elapsed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=80, help="bystander requests per phase")
    parser.add_argument("--flood", type=int, default=8, help="flood seconds")
    parser.add_argument("--rounds", type=int, default=3, help="quiet/flood rounds per variant")
    args = parser.parse_args()
    results: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="knowflow-throttle-") as tmp:
        work = Path(tmp)
        nats_port, identity_port = free_port(), free_port()
        nats = start_nats_server(work / "nats", port=nats_port)
        nats_url = f"nats://127.0.0.1:{nats_port}"
        env = {
            "KNOWFLOW_DATABASE_URL": f"sqlite:///{work / 'identity.db'}",
            "KNOWFLOW_NATS_URL": nats_url,
            "KNOWFLOW_JWT_PRIVATE_KEY_FILE": str(work / "jwt.pem"),
            "KNOWFLOW_IDENTITY_URL": f"http://127.0.0.1:{identity_port}",
            "KNOWFLOW_LOG_LEVEL": "WARNING",
        }
        identity = f"http://127.0.0.1:{identity_port}"
        try:
            with uvicorn_process(
                "services.identity.main:app",
                port=identity_port,
                env=env,
                workers=1,
                log=work / "identity.log",
            ):
                bystander_token = register(identity, "bystander")
                flood_token = register(identity, "flooder")
                for label, enabled, delay in VARIANTS:
                    gateway_port = free_port()
                    with uvicorn_process(
                        "gateway.main:app",
                        port=gateway_port,
                        env={
                            **env,
                            "KNOWFLOW_RATE_LIMIT_ENABLED": enabled,
                            "KNOWFLOW_RATE_LIMIT_REFUSAL_DELAY_SECONDS": delay,
                            # Fresh buckets per variant: the same two users run each one.
                            "KNOWFLOW_RATE_LIMIT_KV_BUCKET": f"bench_{label}",
                        },
                        workers=1,
                        log=work / f"gateway-{label}.log",
                    ):
                        time.sleep(1.0)  # the limiter connects to NATS
                        figure = bystander(
                            f"http://127.0.0.1:{gateway_port}",
                            identity,
                            bystander_token,
                            flood_token,
                            count=args.count,
                            flood=args.flood,
                            rounds=args.rounds,
                        )
                    results[label] = figure
                    print(f"{label}: {figure}", flush=True)
            results["shared_counter_cost"] = asyncio.run(kv_costs(nats_url, 2000))
            print(f"shared counter cost: {results['shared_counter_cost']}", flush=True)
            results["identity_memory"] = [
                identity_memory(work, env, concurrency) for concurrency in (64, 2)
            ]
            for row in results["identity_memory"]:
                print(f"identity memory: {row}", flush=True)
        finally:
            nats.terminate()
            nats.wait(timeout=10)
    results["versions"] = versions()
    results["cpus"] = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    write(results)


def write(results: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "throttle.json").write_text(json.dumps(results, indent=2) + "\n")
    off, on, no_delay = (
        results["limiter_off"],
        results["limiter_on"],
        results["limiter_on_no_delay"],
    )
    cost = results["shared_counter_cost"]
    lines = [
        "# Throttling",
        "",
        f"Measured {results['date']} by `bench/throttle_bench.py` on {results['cpus']} cores "
        "(shared with other work): real nats-server, identity and gateway processes on "
        "127.0.0.1. Bystander: sequential GET /api/v1/users/me; flood: `wrk -c16` on the same "
        "route with another user's token, bystander measured from the flood's 4th second; "
        "medians of 3 quiet/flood rounds (the runs are in throttle.json).",
        "",
        "## A bystander during a flood (goal: flood p50 within 2x of quiet)",
        "",
        "| limiter | quiet p50 ms | flood p50 ms | ratio | goal | flood req/s | flood non-2xx |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = (("off", off), ("on, 429 not held", no_delay), ("on (default: 429 held 0.1 s)", on))
    for label, row in rows:
        verdict = "met" if row["ratio"] <= 2 else "missed"
        lines.append(
            f"| {label} | {row['quiet_p50_ms']} | {row['flood_p50_ms']} | {row['ratio']}x | "
            f"≤ 2x: {verdict} | {row['flood_rps']} | {row['flood_non_2xx']} |"
        )
    lines += [
        "",
        "## The gateway's added latency per request (p50, sequential)",
        "",
        "| limiter | straight to identity ms | through the gateway ms | added ms |",
        "|---|---|---|---|",
        f"| off | {off['direct_p50_ms']} | {off['quiet_p50_ms']} | {off['gateway_added_ms']} |",
        f"| on | {on['direct_p50_ms']} | {on['quiet_p50_ms']} | {on['gateway_added_ms']} |",
        f"| on, 429 not held | {no_delay['direct_p50_ms']} | {no_delay['quiet_p50_ms']} | "
        f"{no_delay['gateway_added_ms']} |",
        "",
        "## What a shared counter costs per request",
        "",
        f"- JetStream KV compare-and-set per request (get + revision-checked update): "
        f"p50 {cost['cas_per_request_p50_us']} µs, p99 {cost['cas_per_request_p99_us']} µs, "
        "on the request path, for every request.",
        f"- Local token bucket (what the gateway does per request): {cost['local_take_us']} µs; "
        "the shared KV is updated in the background, one CAS per active bucket per sync round "
        "(0.1 s), whatever the request rate.",
        "",
        "## Identity's memory under 16 concurrent logins (48 in all)",
        "",
        "| argon2 at once | idle RSS MiB | peak RSS MiB | logins OK | seconds |",
        "|---|---|---|---|---|",
    ]
    for row in results["identity_memory"]:
        lines.append(
            f"| {row['hash_concurrency']} | {row['idle_rss_mib']} | {row['peak_rss_mib']} | "
            f"{row['logins_ok']}/{row['logins']} | {row['seconds']} |"
        )
    (RESULTS / "throttle.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
