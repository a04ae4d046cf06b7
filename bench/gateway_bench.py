"""Gateway overhead: wrk against identity directly and through the gateway, medians of runs.

    .venv/bin/python -m bench.gateway_bench                      # the gateway as shipped
    .venv/bin/python -m bench.gateway_bench --variants lean,lean-2w,naive-httpx,naive-aiohttp

Starts nats-server, identity (uvicorn, 1 worker, uvloop + httptools) and each gateway
variant as real processes on 127.0.0.1, registers a user for a real token, then runs
`wrk -t1 -c64` against a cheap GET (JWKS) and an authenticated GET (/users/me).
Writes bench/results/gateway.md and gateway.json.
"""

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import httpx

from shared.natsserver import free_port, start_nats_server, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

# name → (ASGI app, gateway workers)
VARIANTS = {
    "lean": ("gateway.main:app", 1),
    "lean-2w": ("gateway.main:app", 2),
    "naive-httpx": ("bench.naive_gateways:httpx_app", 1),
    "naive-aiohttp": ("bench.naive_gateways:aiohttp_app", 1),
}
GATEWAY_HTTP = "gateway.server:CappedHttpToolsProtocol"
# label → (upstream, direct path, gateway path, needs a token)
TARGETS = {
    "jwks": ("identity", "/.well-known/jwks.json", "/api/v1/auth/jwks", False),
    "users_me": ("identity", "/users/me", "/api/v1/users/me", True),
    "stub_ping": ("stub", "/posts/ping", "/api/v1/posts/ping", True),
}


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    # Gateway CPU (user + system) per request: steadier than req/s on a shared machine.
    cpu_us: float = float("nan")


@dataclass
class Figure:
    variant: str
    target: str
    mode: str  # direct | gateway
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_us: float
    runs: list[float]


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(
    url: str, *, token: str | None, duration: int, connections: int, script: Path | None = None
) -> Run:
    """One wrk run (with a Lua `script` that builds the requests, if given); parses req/s,
    p50/p99 and non-2xx/socket errors."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url]
    if script is not None:
        command[-1:-1] = ["-s", str(script)]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=duration + 30
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    # No completed request means no latency distribution: record NaN rather than fail.
    p50 = p99 = float("nan")
    if found := re.search(r"Latency Distribution\s+50%\s+(\S+).*?99%\s+(\S+)", output, re.S):
        p50, p99 = _ms(found.group(1)), _ms(found.group(2))
    errors = 0
    if found := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        errors += int(found.group(1))
    if found := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(value) for value in found.groups())
    requests = int(found.group(1)) if (found := re.search(r"(\d+) requests in", output)) else 0
    return Run(rps, p50, p99, errors, requests)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its children (uvicorn workers)."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(child) for child in children.read_text().split()]
    total = 0
    for each in pids:
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def measure(
    url: str,
    *,
    token: str | None,
    runs: int,
    duration: int,
    connections: int,
    cpu_pid: int | None = None,
) -> tuple[Run, list[float]]:
    """A short warm-up, then `runs` runs, each once the last one's backlog drained; medians."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    settle(url, headers=headers)
    run_wrk(url, token=token, duration=2, connections=connections)
    results = []
    for _ in range(runs):
        settle(url, headers=headers)
        before = cpu_seconds(cpu_pid) if cpu_pid else 0.0
        run = run_wrk(url, token=token, duration=duration, connections=connections)
        if cpu_pid and run.requests:
            run.cpu_us = (cpu_seconds(cpu_pid) - before) / run.requests * 1e6
        results.append(run)
    median = Run(
        statistics.median(r.rps for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
        sum(r.requests for r in results),
        statistics.median(r.cpu_us for r in results),
    )
    return median, [r.rps for r in results]


@contextmanager
def uvicorn_process(
    app: str,
    *,
    port: int,
    env: dict[str, str],
    workers: int,
    log: Path,
    http: str = "httptools",
) -> Iterator[subprocess.Popen[bytes]]:
    """`uvicorn app` on 127.0.0.1:port with uvloop and httptools; stopped on exit."""
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host=127.0.0.1",
        f"--port={port}",
        f"--workers={workers}",
        "--loop=uvloop",
        f"--http={http}",
        "--no-server-header",
        "--no-access-log",
        "--log-level=warning",
    ]
    with open(log, "ab") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=output, stderr=output
        )
    try:
        wait_for_port(port, timeout=30)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def settle(url: str, *, headers: dict[str, str] | None = None, timeout: float = 90.0) -> None:
    """Wait until `url` answers 200 quickly: the previous run's backlog has drained."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            response = httpx.get(url, headers=headers, timeout=10)
            if response.status_code == 200 and time.monotonic() - started < 0.05:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not settle within {timeout}s")


def register(base_url: str) -> str:
    response = httpx.post(
        f"{base_url}/auth/register",
        json={
            "handle": "bench",
            "email": "bench@example.org",
            "password": "correct horse battery staple",
            "display_name": "Bench",
        },
        timeout=30,  # argon2 on a loaded machine
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "aiohttp", "httpx"):
        with contextlib.suppress(PackageNotFoundError):  # aiohttp is no longer locked
            found[package] = version(package)
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    found["wrk"] = (wrk.stdout or wrk.stderr).split("\n")[0].strip()
    return found


def run_benchmark(
    variants: list[str],
    *,
    runs: int,
    duration: int,
    connections: int,
    workdir: Path | None,
    targets: list[str] | None = None,
    gateway_http: str = GATEWAY_HTTP,
) -> list[Figure]:
    chosen = {name: TARGETS[name] for name in targets or TARGETS}
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="knowflow-bench-") as tmp:
        work = workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        nats_port, identity_port, stub_port = free_port(), free_port(), free_port()
        nats = start_nats_server(work / "nats", port=nats_port)
        try:
            env = {
                "KNOWFLOW_DATABASE_URL": f"sqlite:///{work / 'identity.db'}",
                "KNOWFLOW_NATS_URL": f"nats://127.0.0.1:{nats_port}",
                "KNOWFLOW_JWT_PRIVATE_KEY_FILE": str(work / "jwt.pem"),
                "KNOWFLOW_IDENTITY_URL": f"http://127.0.0.1:{identity_port}",
                "KNOWFLOW_POSTS_URL": f"http://127.0.0.1:{stub_port}",
                "KNOWFLOW_LOG_LEVEL": "WARNING",
                # The limiter stays on (its cost is part of the hop) but never refuses: one
                # wrk client is far above any per-client quota. Throttling has its own bench.
                **{
                    f"KNOWFLOW_RATE_LIMIT_{route_class}": '{"limit": 100000000, "window": 1}'
                    for route_class in ("READS", "WRITES", "SEARCH", "AUTH")
                },
            }
            identity = f"http://127.0.0.1:{identity_port}"
            bases = {"identity": identity, "stub": f"http://127.0.0.1:{stub_port}"}
            with (
                uvicorn_process(
                    "services.identity.main:app",
                    port=identity_port,
                    env=env,
                    workers=1,
                    log=work / "identity.log",
                ),
                uvicorn_process(
                    "bench.stub_upstream:app",
                    port=stub_port,
                    env=env,
                    workers=1,
                    log=work / "stub.log",
                ),
            ):
                token = register(identity)

                def bench(
                    variant: str,
                    target: str,
                    mode: str,
                    url: str,
                    auth: bool,
                    cpu_pid: int | None = None,
                ) -> None:
                    if chosen[target][0] == "identity":
                        settle(identity + "/users/me", headers={"Authorization": f"Bearer {token}"})
                    median, rps_runs = measure(
                        url,
                        token=token if auth else None,
                        runs=runs,
                        duration=duration,
                        connections=connections,
                        cpu_pid=cpu_pid,
                    )
                    figure = Figure(variant, target, mode, **asdict(median), runs=rps_runs)
                    print(
                        f"{variant:14} {target:9} {mode:8} {median.rps:9.0f} req/s  "
                        f"p50 {median.p50_ms:6.2f} ms  p99 {median.p99_ms:6.2f} ms  "
                        f"errors {median.errors}  gateway CPU {median.cpu_us:5.0f} µs/request",
                        flush=True,
                    )
                    figures.append(figure)

                for target, (upstream, direct_path, _, auth) in chosen.items():
                    bench("direct", target, "direct", bases[upstream] + direct_path, auth)
                for variant in variants:
                    app, workers = VARIANTS[variant]
                    gateway_port = free_port()
                    with uvicorn_process(
                        app,
                        port=gateway_port,
                        env=env,
                        workers=workers,
                        log=work / f"gateway-{variant}.log",
                        # The gateway as deployed: its own protocol caps request heads.
                        http=gateway_http if app == "gateway.main:app" else "httptools",
                    ) as process:
                        gateway = f"http://127.0.0.1:{gateway_port}"
                        for target, (_, _, gateway_path, auth) in chosen.items():
                            url = gateway + gateway_path
                            bench(variant, target, "gateway", url, auth, process.pid)
        finally:
            nats.terminate()
            nats.wait(timeout=10)
    return figures


def ratios(figures: list[Figure]) -> list[tuple[str, str, float, float, float]]:
    """(variant, target, direct req/s, gateway req/s, ratio) per gateway figure."""
    direct = {f.target: f.rps for f in figures if f.mode == "direct"}
    return [
        (f.variant, f.target, direct[f.target], f.rps, f.rps / direct[f.target])
        for f in figures
        if f.mode == "gateway"
    ]


def write_results(figures: list[Figure], config: dict[str, object], path: Path) -> None:
    lines = [
        "# Gateway benchmark",
        "",
        f"Date: {config['date']}  ",
        f"Machine: {config['cpus']} CPUs, {config['platform']}  ",
        f"Versions: {', '.join(f'{k} {v}' for k, v in config['versions'].items())}  ",  # type: ignore[attr-defined]
        f"Load: `wrk -t1 -c{config['connections']} -d{config['duration']}s`, "
        f"median of {config['runs']} runs after a 2 s warm-up; wrk, gateway, identity and "
        "nats-server share the machine.  ",
        "Identity: uvicorn, 1 worker, uvloop + httptools, SQLite, real NATS.",
        "",
        "| variant | target | mode | req/s | p50 ms | p99 ms | errors | gateway CPU µs/req | runs req/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        runs = ", ".join(f"{rps:.0f}" for rps in f.runs)
        lines.append(
            f"| {f.variant} | {f.target} | {f.mode} | {f.rps:.0f} | {f.p50_ms:.2f} | "
            f"{f.p99_ms:.2f} | {f.errors} | {f.cpu_us:.0f} | {runs} |"
        )
    lines += [
        "",
        "| variant | target | direct req/s | gateway req/s | ratio |",
        "|---|---|---|---|---|",
    ]
    for variant, target, direct, gateway, ratio in ratios(figures):
        lines.append(f"| {variant} | {target} | {direct:.0f} | {gateway:.0f} | {ratio:.0%} |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    payload = {**config, "figures": [asdict(f) for f in figures]}
    path.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--variants", default="lean", help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workdir", type=Path, help="keep databases and logs here")
    parser.add_argument("--output", type=Path, default=RESULTS / "gateway.md")
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma list of targets")
    parser.add_argument(
        "--gateway-http", default=GATEWAY_HTTP, help="uvicorn --http for the gateway variants"
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in variants if name not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variants: {unknown}")
    config: dict[str, object] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "versions": versions(),
        "runs": args.runs,
        "duration": args.duration,
        "connections": args.connections,
        "variants": {name: VARIANTS[name] for name in variants},
    }
    started = time.monotonic()
    figures = run_benchmark(
        variants,
        runs=args.runs,
        duration=args.duration,
        connections=args.connections,
        workdir=args.workdir,
        targets=[name.strip() for name in args.targets.split(",") if name.strip()],
        gateway_http=args.gateway_http,
    )
    for variant, target, direct, gateway, ratio in ratios(figures):
        print(f"{variant:14} {target:9} gateway/direct = {gateway:.0f}/{direct:.0f} = {ratio:.0%}")
    write_results(figures, config, args.output)
    print(f"wrote {args.output} ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
