"""Issue 13's table, from the latest results of the benchmarks that measure each row.

    .venv/bin/python -m bench.table                       # prints it, writes results/table.md
    .venv/bin/python -m bench.table --search search-10k-quiet,search-100k-quiet

Each row is read from a results file another benchmark wrote (`ingest_bench`,
`search_bench`, `digest_bench`), with that run's date and the machine's load during it:
this module measures nothing itself. A row whose file is missing says so.
"""

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Row:
    what: str
    measured: str
    goal: str
    met: bool | None  # None: not measured
    source: str  # file and date
    load: str


def _read(name: str) -> Any | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _load(values: Sequence[float] | str | None) -> str:
    if values is None:
        return "?"
    if isinstance(values, str):
        return values
    return " / ".join(f"{v:.2f}" for v in values)


def ingest_rows(name: str = "ingest") -> list[Row]:
    results = _read(name)
    if results is None:
        return [Row("POST /posts, users/me", "not measured", "", None, f"{name}.json missing", "")]
    phases = {phase["name"]: phase for phase in results["phases"]}
    source = f"{name}.json, {results['date']}"
    rows = []
    if (ingest := phases.get("ingest")) is not None:
        rows.append(
            Row(
                "POST /posts through the gateway, 64 connections",
                f"{ingest['rps']:.0f} posts/s, p99 {ingest['p99_ms']:.0f} ms",
                "≥ 1,500 posts/s, p99 ≤ 100 ms",
                ingest["rps"] >= 1500 and ingest["p99_ms"] <= 100,
                source,
                ingest["load"],
            )
        )
    if (single := phases.get("post-1conn")) is not None:
        rows.append(
            Row(
                "CPU per POST /posts in the posts service (1 connection)",
                f"{single['cpu_ms_per_request']:.2f} ms",
                "≤ 0.6 ms",
                single["cpu_ms_per_request"] <= 0.6,
                source,
                single["load"],
            )
        )
    if (me := phases.get("users-me")) is not None:
        rows.append(
            Row(
                "authenticated GET /users/me, service direct, 64 connections",
                f"{me['rps']:.0f} req/s ({me['cpu_ms_per_request']:.2f} ms CPU each)",
                "≥ 5,000 req/s",
                me["rps"] >= 5000,
                source,
                me["load"],
            )
        )
    return rows


def search_rows(names: Sequence[str]) -> list[Row]:
    rows = []
    for name in names:
        results = _read(name)
        if results is None:
            rows.append(Row(f"search ({name})", "not measured", "", None, f"{name}.json", ""))
            continue
        for result in results["results"]:
            if result["engine"] != "embedded":
                continue
            docs = result["docs_indexed"]
            source = f"{name}.json, {results['date']}"
            load = result["load"]
            query = result["query_ms"]
            rows.append(
                Row(
                    f"embedded search query p50 / p99 at {docs:,} docs",
                    f"{query['p50']:.0f} / {query['p99']:.0f} ms",
                    "p99 ≤ 20 ms, flat as the corpus grows",
                    query["p99"] <= 20,
                    source,
                    _load(load.get("queries")),
                )
            )
            rows.append(
                Row(
                    f"embedded indexing through the event path, {docs:,} docs",
                    f"{result['docs_per_second']:,.0f} docs/s",
                    "≥ 5,000 docs/s",
                    result["docs_per_second"] >= 5000,
                    source,
                    _load(load.get("indexing")),
                )
            )
            under = result.get("searchable_under_ingest_ms") or {}
            if under.get("p99") is not None:
                rows.append(
                    Row(
                        f"write → searchable p99 under {result['ingest_rate_achieved']:,.0f}"
                        " posts/s",
                        f"{under['p99']:.0f} ms",
                        "≤ 250 ms",
                        under["p99"] <= 250,
                        source,
                        _load(load.get("ingest_probes")),
                    )
                )
            rows.append(
                Row(
                    f"search service RSS after {docs:,} posts",
                    f"{result['rss_mb']:.1f} MB",
                    "≤ 150 MB",
                    result["rss_mb"] <= 150,
                    source,
                    _load(load.get("queries")),
                )
            )
    return rows


def digest_rows(name: str = "digests", people: int = 10_000) -> list[Row]:
    runs = _read(name) or []
    run = next((r for r in reversed(runs) if r["population"]["people"] == people), None)
    if run is None:
        return [Row(f"digests for {people:,} people", "not measured", "≤ 60 s", None, name, "")]
    source = f"{name}.json ({run['label']}), {run['date']}"
    load = f"{_load(run['load_before'])} → {_load(run['load_after'])}"
    return [
        Row(
            f"digests for {people:,} people, one round",
            f"{run['seconds']:.1f} s",
            f"≤ {run['goal_seconds']:.0f} s",
            run["seconds"] <= run["goal_seconds"],
            source,
            load,
        ),
        Row(
            "digests service peak RSS during that round",
            f"{run['rss_peak_mb']:.0f} MB (before the round {run['rss_before_mb']:.0f})",
            f"≤ {run['goal_rss_mb']:.0f} MB",
            run["rss_peak_mb"] <= run["goal_rss_mb"],
            source,
            load,
        ),
    ]


def _mark(met: bool | None) -> str:
    return "?" if met is None else "met" if met else "NOT met"


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| what | measured | goal | | from | load (1/5/15 min) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r.what} | {r.measured} | {r.goal} | {_mark(r.met)} | {r.source} | {r.load} |"
            for r in rows
        ),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ingest", default="ingest", help="ingest_bench results name")
    parser.add_argument(
        "--search", default="search-10k-quiet,search-100k-quiet", help="search_bench results"
    )
    parser.add_argument("--digests", default="digests", help="digest_bench results name")
    args = parser.parse_args()
    rows = [
        *ingest_rows(args.ingest),
        *search_rows([name for name in args.search.split(",") if name]),
        *digest_rows(args.digests),
    ]
    text = "# Issue 13's table, from the latest results\n\n" + table(rows) + "\n"
    (RESULTS / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
