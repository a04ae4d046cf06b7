"""How fast the web app renders its pages on the demo site, next to the goal (≤ 50 ms p95).

    .venv/bin/python -m bench.web_bench                    # quantumcomputing, 200 per page
    .venv/bin/python -m bench.web_bench --requests 50 --site cardano

Starts the platform as `make demo` does (real processes, SQLite, embedded search) in
`var/bench-web-<site>/`, imports the site the first time (later runs reuse it), signs a
person in through the sign-in form, then requests each page one at a time, as a person's
browser would, and reports per page the web app's own time (its `Server-Timing`, which
includes every API call the page makes through the gateway) and the time seen by the
client through the gateway (p50, p95). The gateway's rate limits are off for the run: the
figure is what a page costs, not how many one address may ask for.
Writes bench/results/web.md and web.json.
"""

import argparse
import json
import os
import platform
import re
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from deploy.demo import import_once
from deploy.launch import LOCAL_ENV, Ports, running_platform
from deploy.stackexchange import DATA

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
GOAL_P95_MS = 50.0
PASSWORD = "a long passphrase for measuring"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SERVER_TIMING = re.compile(r"page;dur=([0-9.]+)")


def sign_in(client: httpx.Client) -> dict[str, Any]:
    """Register (the first person is the admin on a demo) and sign in through the form."""
    handle = "bench_reader"
    registered = client.post(
        "/api/v1/auth/register",
        json={
            "handle": handle,
            "email": "reader@example.org",
            "password": PASSWORD,
            "display_name": "Bench Reader",
        },
    )
    assert registered.status_code in (201, 409), registered.text  # 409: an earlier run's
    form = client.get("/login")
    token = CSRF.search(form.text)
    assert token, form.text[:500]
    signed_in = client.post(
        "/login", data={"login": handle, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert signed_in.status_code == 303, signed_in.text[:500]
    login = client.post("/api/v1/auth/login", json={"login": handle, "password": PASSWORD})
    body: dict[str, Any] = login.json()
    return body


def typical_pages(client: httpx.Client, token: str) -> dict[str, str]:
    """The pages a person visits most, on real items of the imported site."""
    api = {"authorization": f"Bearer {token}"}
    questions = client.get("/api/v1/questions", params={"sort": "votes", "limit": 5}, headers=api)
    question = questions.json()["items"][0]
    tag = (question.get("tags") or ["quantum-gate"])[0]
    experts = client.get("/api/v1/experts", params={"topic": tag, "limit": 3}, headers=api)
    expert = next(
        (item["handle"] for item in experts.json()["experts"] if item.get("handle")), None
    )
    pages = {
        "home (feed)": "/",
        "questions": "/questions",
        "question with answers": f"/questions/{question['id']}",
        "ask": "/questions/ask",
        "search": f"/search?q={tag.replace('-', ' ')}",
        "who knows": f"/experts?topic={tag}",
        "inbox": "/inbox",
        "posts": "/posts",
        "articles": "/articles",
        "tag": f"/tags/{tag}",
        "groups": "/groups",
        "settings": "/settings",
        "admin: knowledge health": "/admin",
    }
    if expert:
        pages["person"] = f"/people/@{expert}"
    return pages


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure(site: str, requests: int) -> dict[str, Any]:
    var_dir = ROOT / "var" / f"bench-web-{site}"
    environment = {
        **LOCAL_ENV,
        "KNOWFLOW_RATE_LIMIT_ENABLED": "false",
        "KNOWFLOW_LOG_LEVEL": "WARNING",
    }
    with running_platform(var_dir, Ports.free(), extra_env=environment) as running:
        if not import_once(running, DATA / site):
            raise SystemExit("the import did not finish; run again")
        semantic = embedded_by_meaning(running.url("search"))
        with httpx.Client(base_url=running.gateway_url, timeout=30.0) as client:
            token = sign_in(client)["access_token"]
            pages = typical_pages(client, token)
            rows = []
            for name, path in pages.items():
                for _ in range(5):  # warm-up: connections, caches, first compiles
                    client.get(path)
                server: list[float] = []
                seen: list[float] = []
                statuses: set[int] = set()
                for _ in range(requests):
                    started = time.perf_counter()
                    response = client.get(path)
                    seen.append((time.perf_counter() - started) * 1000)
                    statuses.add(response.status_code)
                    timing = SERVER_TIMING.search(response.headers.get("server-timing", ""))
                    if timing:
                        server.append(float(timing.group(1)))
                rows.append(
                    {
                        "page": name,
                        "path": path,
                        "statuses": sorted(statuses),
                        "server_p50_ms": round(statistics.median(server), 1) if server else None,
                        "server_p95_ms": round(percentile(server, 0.95), 1) if server else None,
                        "client_p50_ms": round(statistics.median(seen), 1),
                        "client_p95_ms": round(percentile(seen, 0.95), 1),
                    }
                )
                print(rows[-1], flush=True)
    return {"site": site, "requests_per_page": requests, "pages": rows, "semantic": semantic}


def embedded_by_meaning(search_url: str, timeout: float = 1200.0) -> dict[str, Any]:
    """Wait until search has embedded everything (its backlog is empty): pages are measured
    on an idle platform, with search by meaning complete."""
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = httpx.get(f"{search_url}/readyz", timeout=10).json()["semantic"]
        if status["state"] != "on" or status["backlog"] == 0:
            print(f"semantic search: {status}", flush=True)
            return status
        if time.monotonic() > deadline:
            raise SystemExit(f"search still embedding after {timeout:.0f}s: {status}")
        time.sleep(2)


def write(result: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    result |= {
        "date": stamp,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_1m": round(os.getloadavg()[0], 1),
        "goal_p95_ms": GOAL_P95_MS,
    }
    (RESULTS / "web.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Web pages rendered on the demo site (`bench/web_bench.py`)",
        "",
        f"{stamp}, {result['machine']}; {result['site']} imported (SQLite, embedded search); "
        f"{result['requests_per_page']} requests per page, one at a time, signed in; 1-minute "
        f"load average at the end {result['load_average_1m']}. Semantic search: "
        f"{result['semantic'].get('model', 'off')} ({result['semantic'].get('items', 0)} items "
        "embedded before measuring).",
        "",
        "Server: the web app's own time (`Server-Timing`), its API calls through the gateway "
        "included. Client: the whole request through the gateway, as the browser sees it.",
        "",
        f"| page | status | server p50 | server p95 | goal p95 ≤ {GOAL_P95_MS:.0f} ms | client p50 | client p95 |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["pages"]:
        met = row["server_p95_ms"] is not None and row["server_p95_ms"] <= GOAL_P95_MS
        lines.append(
            f"| {row['page']} (`{row['path']}`) | {', '.join(map(str, row['statuses']))} "
            f"| {row['server_p50_ms']} ms | {row['server_p95_ms']} ms | {'met' if met else 'NOT met'} "
            f"| {row['client_p50_ms']} ms | {row['client_p95_ms']} ms |"
        )
    (RESULTS / "web.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--site", default="quantumcomputing")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    write(measure(args.site, args.requests))


if __name__ == "__main__":
    main()
