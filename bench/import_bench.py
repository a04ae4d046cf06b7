"""How long `knowflow-admin import stackexchange` takes on the shared sites, next to its goal.

    .venv/bin/python -m bench.import_bench                       # both shared sites
    .venv/bin/python -m bench.import_bench --sites cardano --concurrency 8

Per site: a fresh platform (real processes, SQLite, embedded search, under a temp dir),
the first import (everything created), then the same import again (nothing created:
every item answered 200 by its source). Goal: the first import of one shared site in a
few minutes (≤ 300 s). Writes bench/results/import.md and import.json.
"""

import argparse
import asyncio
import json
import os
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deploy.admin import AdminTokens
from deploy.launch import Ports, running_platform
from deploy.stackexchange import DATA
from deploy.stackexchange_import import import_dump, read_dump
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
GOAL_SECONDS = 300.0


def measure(site: str, concurrency: int) -> dict[str, Any]:
    dump = read_dump(DATA / site)
    with tempfile.TemporaryDirectory(prefix="kf-import-bench-") as var:
        ports = Ports.free()
        with running_platform(Path(var), ports) as running:
            key = running.var_dir / "identity" / "jwt-ed25519.pem"
            tokens = AdminTokens(Settings(jwt_private_key_file=key))

            def run() -> Any:
                return asyncio.run(
                    import_dump(
                        dump,
                        gateway_url=running.gateway_url,
                        tokens=tokens,
                        concurrency=concurrency,
                    )
                )

            first = run()
            load = os.getloadavg()[0]
            again = run()
    requests = sum(first.created.values()) + sum(first.existing.values())
    return {
        "site": site,
        "concurrency": concurrency,
        "items": requests,
        "created": first.created,
        "failed": {kind: len(items) for kind, items in first.failed.items()},
        "first_seconds": round(first.seconds, 1),
        "items_per_second": round(requests / first.seconds, 1),
        "rerun_seconds": round(again.seconds, 1),
        "rerun_created": again.total_created,
        "load_average_1m": round(load, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", default="quantumcomputing,cardano")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    rows = []
    for site in args.sites.split(","):
        row = measure(site, args.concurrency)
        verdict = "meets" if row["first_seconds"] <= GOAL_SECONDS else "MISSES"
        print(
            f"{site}: first import {row['first_seconds']} s for {row['items']} items "
            f"({row['items_per_second']}/s; goal ≤ {GOAL_SECONDS:.0f} s: {verdict}); "
            f"rerun {row['rerun_seconds']} s, created {row['rerun_created']} (goal 0)",
            flush=True,
        )
        rows.append(row)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "import.json").write_text(json.dumps({"machine": machine, "runs": rows}, indent=2))
    lines = [
        "# Import of the shared Stack Exchange sites (`bench/import_bench.py`)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine}; a fresh platform per site "
        f"(SQLite, embedded search), {args.concurrency} requests in flight, through the gateway.",
        "",
        "| site | items | first import | items/s | goal ≤ 300 s | rerun | created by rerun "
        "| load (1 min) after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['site']} | {row['items']} | {row['first_seconds']} s | "
            f"{row['items_per_second']} | "
            f"{'met' if row['first_seconds'] <= GOAL_SECONDS else 'missed'} | "
            f"{row['rerun_seconds']} s | {row['rerun_created']} | {row['load_average_1m']} |"
        )
    lines += [
        "",
        "Items: people, questions, answers, comments and acceptances, one request each "
        "(plus one membership per person with `--group`). Data: Stack Exchange sites, CC BY-SA.",
    ]
    (RESULTS / "import.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
