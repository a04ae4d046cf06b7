"""Dependency outages under write load through the real event path: lost, duplicated, converge.

    .venv/bin/python -m bench.faults                                  # 180 s + 30 s outages
    .venv/bin/python -m bench.faults --opensearch-outage 40 --database-outage 15

Starts NATS, the five services and the gateway as real processes (posts, identity and
search on SQLite; search indexes into a real OpenSearch; digests on a real PostgreSQL),
with OpenSearch and PostgreSQL each behind a TCP proxy this script cuts (the shared
servers themselves are never touched). One client writes posts through the gateway at
`--rate` per second while OpenSearch is cut, then while digests' PostgreSQL is cut.
Then it waits until the search index and the digests' projection hold exactly the
posts in the posts database (the source of truth), and prints what was lost or
duplicated, how long convergence took, what was parked and whether the paused
consumers reported not-ready. Results: `bench/results/faults.md` and `.json`.
"""

import argparse
import asyncio
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from opensearchpy import OpenSearch
from sqlalchemy import create_engine, func, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from deploy.launch import Ports, running_platform
from services.digests.models import DigestContent
from services.posts.models import Post
from shared.events.bus import Bus
from shared.testing.tcp_proxy import TcpProxy

RESULTS = Path(__file__).parent / "results"
DEFAULT_POSTGRES = "postgresql+psycopg://knowflow:knowflow@127.0.0.1:55432/knowflow_test"


@dataclass
class Load:
    """Posts written through the gateway, in the background."""

    gateway: str
    headers: dict[str, str]
    rate: float
    acked: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        interval = 1.0 / self.rate
        with httpx.Client(base_url=self.gateway, timeout=10.0) as client:
            step, started = 0, time.monotonic()
            while not self.stop.is_set():
                try:
                    response = client.post(
                        "/posts", headers=self.headers, json={"body": f"fault load item {step}"}
                    )
                    self.statuses[response.status_code] += 1
                    if response.status_code == 201:
                        self.acked.append(response.json()["id"])
                except httpx.HTTPError:
                    self.statuses[0] += 1
                step += 1
                time.sleep(max(0.0, started + step * interval - time.monotonic()))


@dataclass
class Readiness:
    """Samples /readyz of search and digests once a second."""

    urls: dict[str, str]
    paused_seen: Counter[str] = field(default_factory=Counter)
    not_ready: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while not self.stop.wait(1.0):
                for name, url in self.urls.items():
                    try:
                        response = client.get(f"{url}/readyz")
                    except httpx.HTTPError:
                        self.not_ready[name] += 1
                        continue
                    if response.status_code != 200:
                        self.not_ready[name] += 1
                        checks = response.json().get("checks", {})
                        for key, value in checks.items():
                            if key.startswith("consumer:") and value.startswith("paused"):
                                self.paused_seen[key] += 1


def register(gateway: str) -> dict[str, str]:
    handle = f"fault{secrets.token_hex(3)}"
    response = httpx.post(
        f"{gateway}/auth/register",
        json={
            "handle": handle,
            "email": f"{handle}@example.org",
            "password": "a long password of letters",
            "display_name": "Fault load",
        },
        timeout=30,
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def truth(posts_db: str) -> list[str]:
    engine = create_engine(posts_db)
    with Session(engine) as session:
        ids = [str(value) for value in session.exec(select(Post.id)).all()]
    engine.dispose()
    return ids


def indexed(client: OpenSearch, alias: str) -> list[str]:
    client.indices.refresh(index=alias)
    body = {"query": {"match_all": {}}, "_source": False, "size": 10000}
    return [hit["_id"] for hit in client.search(index=alias, body=body)["hits"]["hits"]]


def digested(engine: Any) -> tuple[list[str], int]:
    with Session(engine) as session:
        ids = [str(value) for value in session.exec(select(DigestContent.content_id)).all()]
        rows = session.exec(select(func.count()).select_from(DigestContent)).one()
    return ids, int(rows)


async def parked_count(nats_url: str) -> int:
    bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="faults")
    try:
        return int((await bus.js.stream_info(bus.dead_letter_stream)).state.messages)
    finally:
        await bus.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--opensearch-outage", type=float, default=180.0)
    parser.add_argument("--database-outage", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=20.0, help="posts per second")
    parser.add_argument("--converge-timeout", type=float, default=120.0)
    parser.add_argument(
        "--opensearch-url",
        default=os.environ.get("KNOWFLOW_TEST_OPENSEARCH_URL", "http://127.0.0.1:9200"),
    )
    parser.add_argument(
        "--postgres-url", default=os.environ.get("KNOWFLOW_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    )
    parser.add_argument("--output", default="faults")
    args = parser.parse_args()

    os_parts = urlsplit(args.opensearch_url)
    pg_base = make_url(args.postgres_url)
    os_proxy = TcpProxy(os_parts.hostname or "127.0.0.1", os_parts.port or 9200)
    pg_proxy = TcpProxy(pg_base.host or "127.0.0.1", pg_base.port or 5432)
    prefix = f"faults-{secrets.token_hex(4)}"
    schema = f"faults_{secrets.token_hex(4)}"
    admin = create_engine(args.postgres_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    options = {"options": f"-csearch_path={schema}"}
    digests_via_proxy = (
        pg_base.set(host="127.0.0.1", port=pg_proxy.port)
        .update_query_dict(options)
        .render_as_string(hide_password=False)
    )
    digests_direct = create_engine(pg_base.update_query_dict(options))
    search = OpenSearch(hosts=[args.opensearch_url], timeout=30)
    var_dir = Path(tempfile.mkdtemp(prefix="knowflow-faults-"))
    ports = Ports.free()
    extra_env = {
        "KNOWFLOW_SEARCH_URL": f"http://127.0.0.1:{os_proxy.port}",
        "KNOWFLOW_SEARCH_INDEX_PREFIX": prefix,
        "KNOWFLOW_DIGEST_SCHEDULE_ENABLED": "false",
        "KNOWFLOW_LOG_LEVEL": "WARNING",
    }
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "opensearch_outage_s": args.opensearch_outage,
        "database_outage_s": args.database_outage,
        "rate_per_s": args.rate,
    }
    try:
        with running_platform(
            var_dir, ports, extra_env=extra_env, database_urls={"digests": digests_via_proxy}
        ) as platform:
            gateway = f"{platform.gateway_url}/api/v1"
            load = Load(gateway, register(gateway), args.rate)
            readiness = Readiness({name: platform.url(name) for name in ("search", "digests")})
            threads = [threading.Thread(target=t.run, daemon=True) for t in (load, readiness)]
            for thread in threads:
                thread.start()
            print(f"load at {args.rate}/s; OpenSearch cut for {args.opensearch_outage:.0f} s")
            time.sleep(5)
            os_proxy.set_mode("refuse")
            time.sleep(args.opensearch_outage)
            os_proxy.set_mode("pass")
            print(f"OpenSearch back; digests' PostgreSQL cut for {args.database_outage:.0f} s")
            time.sleep(5)
            pg_proxy.set_mode("refuse")
            time.sleep(args.database_outage)
            pg_proxy.set_mode("pass")
            restored = time.monotonic()
            print("PostgreSQL back; 5 s more load, then waiting for convergence")
            time.sleep(5)
            load.stop.set()
            threads[0].join(timeout=15)
            load_stopped = time.monotonic()
            source = set(truth(platform.environment("posts", {})["KNOWFLOW_DATABASE_URL"]))
            deadline = load_stopped + args.converge_timeout
            converged_at: float | None = None
            while True:
                in_index = indexed(search, f"{prefix}-content")
                in_digests, digest_rows = digested(digests_direct)
                if set(in_index) == source and set(in_digests) == source:
                    converged_at = time.monotonic()
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(1.0)
            readiness.stop.set()
            threads[1].join(timeout=10)
            result.update(
                {
                    "posts_acknowledged": len(load.acked),
                    "posts_in_source": len(source),
                    "write_statuses": dict(load.statuses),
                    "lost_search": len(source - set(in_index)),
                    "lost_digests": len(source - set(in_digests)),
                    "duplicated_search": len(in_index) - len(set(in_index)),
                    "duplicated_digests": digest_rows - len(set(in_digests)),
                    "posts_acked_not_in_source": len(set(load.acked) - source),
                    "posts_in_source_not_acked": len(source - set(load.acked)),
                    "converge_s_after_load_stopped": (
                        round(converged_at - load_stopped, 1) if converged_at else None
                    ),
                    "converge_s_after_last_restore": (
                        round(converged_at - restored, 1) if converged_at else None
                    ),
                    "parked": asyncio.run(parked_count(f"nats://127.0.0.1:{ports.nats}")),
                    "paused_samples": dict(readiness.paused_seen),
                    "not_ready_samples": dict(readiness.not_ready),
                }
            )
    finally:
        os_proxy.close()
        pg_proxy.close()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
        digests_direct.dispose()
        try:
            names = search.indices.get(index=f"{prefix}-*", params={"expand_wildcards": "all"})
            for name in names:
                search.indices.delete(index=name, params={"ignore_unavailable": "true"})
        finally:
            search.close()
        shutil.rmtree(var_dir, ignore_errors=True)
    report(result, args.output)
    lost = result["lost_search"] + result["lost_digests"]
    return 0 if lost == 0 and result["converge_s_after_load_stopped"] is not None else 1


def report(result: dict[str, Any], output: str) -> None:
    lines = [
        f"## Run of {result['date']}",
        "",
        f"OpenSearch cut {result['opensearch_outage_s']:.0f} s, then digests' PostgreSQL cut "
        f"{result['database_outage_s']:.0f} s, {result['rate_per_s']:.0f} posts/s through the "
        "gateway (goal: 0 lost, 0 duplicated, converged with no manual step).",
        "",
        "| figure | value | goal |",
        "|---|---|---|",
        f"| posts acknowledged (201) / in posts' database | {result['posts_acknowledged']} / "
        f"{result['posts_in_source']} | equal |",
        f"| lost from the search index | {result['lost_search']} | 0 |",
        f"| lost from digests | {result['lost_digests']} | 0 |",
        f"| duplicated (index / digests) | {result['duplicated_search']} / "
        f"{result['duplicated_digests']} | 0 / 0 |",
        f"| time to converge after the load stopped | {result['converge_s_after_load_stopped']} s "
        "| within the back-off cap (30 s) |",
        f"| time to converge after the last outage ended | "
        f"{result['converge_s_after_last_restore']} s | |",
        f"| messages parked | {result['parked']} | 0 |",
        f"| /readyz samples with a paused consumer | {result['paused_samples']} | > 0 |",
        f"| write answers by status | {result['write_statuses']} | all 201 |",
        "",
    ]
    text_report = "\n".join(lines)
    print(text_report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{output}.json").write_text(json.dumps(result, indent=2) + "\n")
    markdown = RESULTS / f"{output}.md"
    head = "# Fault runs (`bench/faults.py`)\n\n"
    previous = markdown.read_text().removeprefix(head) if markdown.exists() else ""
    markdown.write_text(head + text_report + "\n" + previous)


if __name__ == "__main__":
    raise SystemExit(main())
