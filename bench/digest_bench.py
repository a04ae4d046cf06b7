"""One full digest round for N people: seconds, people/s, peak RSS, SQL statements.

    .venv/bin/python -m bench.digest_bench                  # 10,000 people, ~2 minutes
    .venv/bin/python -m bench.digest_bench -n 1000          # while developing
    .venv/bin/python -m bench.digest_bench --database-url postgresql+psycopg://...

Makes a fresh SQLite database (or uses an empty PostgreSQL database given with
--database-url), migrates it with the digests service's own migrations, and fills the
service's projections directly (bulk inserts of the rows its consumers would write from
`UserRegistered`, `GroupCreated`, `GroupMember*`, `FollowCreated`, `*Created` content and
`NotificationPreferencesUpdated`; going through NATS would take longer than the round
measured and exercise the consumers, not the digests):

- N people; 1 in 10 on a daily digest, 1 in 10 weekly at 08:00 Europe/Berlin, the rest
  on the default (weekly, 09:00 UTC);
- N/50 groups, a third private; each person a member of 0-4 groups (skewed to the big
  ones), 1 in 10 memberships since left;
- each person follows 5-30 sources: people, tags (N/25 of them) and groups, each drawn
  from a Zipf-like distribution (a few sources are followed by thousands);
- a week of content, 7.5 items per person (75,000 for 10,000): 40 % roots (posts and
  1 in 5 articles, 1 in 5 in a group, 0-3 tags, some mentions), 60 % replies to them
  (skewed to popular threads), plus older roots (8-14 days) that get replies this week.

Then a separate process (the digests service's code, nothing else imported) runs one
`send_due_digests` round, exactly what the schedule and `POST /admin/digests/send` run,
through to the `DigestReady` events in the outbox. It reports its wall and CPU time,
people/s, peak RSS (VmHWM) and RSS before and after, the SQL statements it issued, and
the load average. Goal: 10,000 people in at most 60 s, RSS at most 150 MB.

Writes bench/results/digests.json and digests.md (`--label` names the run in them).
"""

import argparse
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, event, func, insert, text
from sqlmodel import Session, SQLModel, select

RESULTS = Path(__file__).parent / "results"
GOAL_SECONDS = 60.0
GOAL_RSS_MB = 150.0
# A Monday 09:30 UTC: the default weekly window (Monday 09:00 UTC) has settled.
NOW = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)


def zipf_picker(rng: random.Random, count: int, skew: float = 1.1) -> Any:
    """Draws indexes 0..count-1, index k with weight 1/(k+1)**skew."""
    cumulative = list(itertools.accumulate(1.0 / (k + 1) ** skew for k in range(count)))
    population = range(count)

    def pick(k: int) -> list[int]:
        return rng.choices(population, cum_weights=cumulative, k=k)

    return pick


def uuid_of(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def chunks(rows: Sequence[dict[str, Any]], size: int = 5000) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def bulk(engine: Engine, model: type[SQLModel], rows: Sequence[dict[str, Any]]) -> None:
    table = model.__table__  # type: ignore[attr-defined]
    with engine.begin() as connection:
        for part in chunks(rows):
            connection.execute(insert(table), list(part))


def seed(engine: Engine, people: int, seed_value: int) -> dict[str, int]:
    """Fill the projections; returns how many rows of each kind."""
    from services.digests.models import (
        DigestContent,
        DigestContentTag,
        DigestFollow,
        DigestGroup,
        DigestMembership,
        DigestPreference,
        DigestUser,
    )

    rng = random.Random(seed_value)
    at = NOW - timedelta(days=30)
    users = [uuid_of(rng) for _ in range(people)]
    handles = [f"person{k}" for k in range(people)]
    bulk(
        engine,
        DigestUser,
        [
            {"user_id": u, "handle": h, "display_name": f"Person {k}", "changed_at": at}
            for k, (u, h) in enumerate(zip(users, handles, strict=True))
        ],
    )
    preferences = []
    for k, user in enumerate(users):
        if k % 10 == 1:
            preferences.append(("daily", 9, "UTC", user))
        elif k % 10 == 2:
            preferences.append(("weekly", 8, "Europe/Berlin", user))
    bulk(
        engine,
        DigestPreference,
        [
            {
                "user_id": u,
                "frequency": f,
                "hour": h,
                "timezone": z,
                "version": 1,
                "changed_at": at,
            }
            for f, h, z, u in preferences
        ],
    )
    group_count = max(people // 50, 3)
    groups = [uuid_of(rng) for _ in range(group_count)]
    private = {g for k, g in enumerate(groups) if k % 3 == 1}
    bulk(
        engine,
        DigestGroup,
        [
            {
                "group_id": g,
                "visibility": "private" if g in private else "public",
                "name": f"Group {k}",
                "slug": f"group-{k}",
            }
            for k, g in enumerate(groups)
        ],
    )
    pick_group = zipf_picker(rng, group_count, 0.9)
    memberships: dict[tuple[UUID, UUID], dict[str, Any]] = {}
    members_of: dict[UUID, list[UUID]] = {g: [] for g in groups}
    for user in users:
        for index in set(pick_group(rng.choice((0, 0, 1, 1, 2, 3, 4)))):
            group = groups[index]
            active = rng.random() >= 0.1
            memberships[(group, user)] = {
                "group_id": group,
                "user_id": user,
                "active": active,
                "version": 1 if active else 2,
                "changed_at": at,
            }
            members_of[group].append(user)
    bulk(engine, DigestMembership, list(memberships.values()))

    tags = [f"tag{k}" for k in range(max(people // 25, 10))]
    pick_person = zipf_picker(rng, people, 0.8)
    pick_tag = zipf_picker(rng, len(tags), 1.0)
    follows: dict[tuple[UUID, str, str], dict[str, Any]] = {}
    for k, user in enumerate(users):
        wanted = rng.randint(5, 30)
        for _ in range(wanted):
            roll = rng.random()
            if roll < 0.6:
                target_type, target = "user", str(users[pick_person(1)[0]])
            elif roll < 0.85:
                target_type, target = "tag", tags[pick_tag(1)[0]]
            else:
                target_type, target = "group", str(groups[pick_group(1)[0]])
            if target == str(user):
                continue
            follows[(user, target_type, target)] = {
                "follower_id": user,
                "target_type": target_type,
                "target": target,
                "active": k % 17 != 0 or rng.random() < 0.5,  # some unfollowed since
                "changed_at": at,
            }
    bulk(engine, DigestFollow, list(follows.values()))

    total = int(people * 7.5)
    week_start = NOW - timedelta(days=7, minutes=30)
    contents: list[dict[str, Any]] = []
    content_tags: list[dict[str, Any]] = []
    roots: list[dict[str, Any]] = []

    def add_root(created: datetime) -> None:
        author = users[pick_person(1)[0]]
        group = groups[pick_group(1)[0]] if rng.random() < 0.2 else None
        if group is not None and members_of[group] and rng.random() < 0.8:
            author = rng.choice(members_of[group])  # mostly members post in a group
        item_tags = sorted({tags[t] for t in pick_tag(rng.choice((0, 1, 1, 2, 3)))})
        mentions = [handles[pick_person(1)[0]]] if rng.random() < 0.1 else []
        kind = "article" if rng.random() < 0.2 else "post"
        content_id = uuid_of(rng)
        row = {
            "content_id": content_id,
            "kind": kind,
            "author_id": author,
            "group_id": group,
            "visibility": "public",
            "title": f"Title {len(contents)}" if kind == "article" else None,
            "excerpt": "Something worth knowing about " + " ".join(item_tags or ["nothing"]),
            "tags": item_tags,
            "mentions": mentions,
            "parent_id": None,
            "thread_root_id": content_id,
            "created_at": created,
            "version": 1,
            "deleted": rng.random() < 0.01,
            "hidden": rng.random() < 0.005,
        }
        contents.append(row)
        roots.append(row)
        content_tags.extend({"tag": t, "content_id": content_id} for t in item_tags)

    for _ in range(total // 20):  # older threads, replied to this week
        add_root(week_start - timedelta(seconds=rng.uniform(3600, 7 * 86400)))
    old_roots = len(roots)
    for _ in range(int(total * 0.4)):
        add_root(week_start + timedelta(seconds=rng.uniform(0, 7 * 86400)))
    pick_thread = zipf_picker(rng, len(roots), 0.7)
    order = list(range(len(roots)))
    rng.shuffle(order)
    for _ in range(total - int(total * 0.4)):
        root = roots[order[pick_thread(1)[0]]]
        start = max(root["created_at"], week_start)
        created = start + (NOW - timedelta(minutes=31) - start) * rng.random()
        mentions = [handles[pick_person(1)[0]]] if rng.random() < 0.1 else []
        contents.append(
            {
                "content_id": uuid_of(rng),
                "kind": "reply",
                "author_id": users[pick_person(1)[0]],
                "group_id": root["group_id"],
                "visibility": root["visibility"],
                "title": None,
                "excerpt": "A reply.",
                "tags": [],
                "mentions": mentions,
                "parent_id": root["content_id"],
                "thread_root_id": root["content_id"],
                "created_at": created,
                "version": 1,
                "deleted": rng.random() < 0.01,
                "hidden": False,
            }
        )
    bulk(engine, DigestContent, contents)
    bulk(engine, DigestContentTag, content_tags)
    return {
        "people": people,
        "groups": group_count,
        "private_groups": len(private),
        "memberships": len(memberships),
        "memberships_left": sum(1 for m in memberships.values() if not m["active"]),
        "follows": len(follows),
        "follows_active": sum(1 for f in follows.values() if f["active"]),
        "tags": len(tags),
        "content": len(contents),
        "roots_older_than_the_week": old_roots,
        "replies": total - int(total * 0.4),
    }


def vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def round_in_this_process(url: str) -> dict[str, Any]:
    """One `send_due_digests` round (run in a child process, so RSS is the round's own)."""
    import services.digests.main  # noqa: F401  (the service as deployed: app, routes, models)
    from services.digests.delivery import send_due_digests
    from shared.db import make_engine
    from shared.events.outbox import OutboxMessage

    engine = make_engine(url)
    statements = 0

    @event.listens_for(engine, "before_cursor_execute")
    def count(*_args: Any) -> None:
        nonlocal statements
        statements += 1

    rss_before = vm_kb("VmRSS")
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    report = send_due_digests(engine=engine, now=NOW)
    elapsed = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    round_statements = statements
    with Session(engine) as session:
        events = int(session.exec(select(func.count()).select_from(OutboxMessage)).one())
    return {
        "seconds": round(elapsed, 2),
        "cpu_seconds": round(cpu, 2),
        "sent": report.sent,
        "nothing_new": report.nothing_new,
        "already_sent": report.already_sent,
        "events_in_outbox": events,
        "statements": round_statements,
        "rss_before_mb": round(rss_before / 1024, 1),
        "rss_peak_mb": round(vm_kb("VmHWM") / 1024, 1),
        "rss_after_mb": round(vm_kb("VmRSS") / 1024, 1),
    }


def digest_fingerprint(url: str) -> str:
    """A hash of every recorded digest (who, which items, in which order), to compare runs."""
    import hashlib

    from shared.db import make_engine

    engine = make_engine(url)
    digest = hashlib.sha256()
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT payload FROM outbox WHERE subject = 'events.restricted.digest.ready.v1'")
        ).all()
    bodies = sorted(
        json.dumps(
            {
                key: value
                for key, value in json.loads(str(payload))["data"].items()
                if key not in {"generated_at"}
            },
            sort_keys=True,
        )
        for (payload,) in rows
    )
    for body in bodies:
        digest.update(body.encode())
    engine.dispose()
    return digest.hexdigest()[:16]


def run(people: int, database_url: str | None, seed_value: int) -> dict[str, Any]:
    from services.digests.main import SPEC
    from shared.db import make_engine

    with tempfile.TemporaryDirectory() as scratch:
        url = database_url or f"sqlite:///{Path(scratch) / 'digests.db'}"
        engine = make_engine(url)
        SPEC.prepare_database(engine)
        started = time.perf_counter()
        population = seed(engine, people, seed_value)
        seeded = time.perf_counter() - started
        engine.dispose()
        load_before = os.getloadavg()
        child = subprocess.run(
            [sys.executable, "-m", "bench.digest_bench", "--round-only", url],
            check=True,
            capture_output=True,
            text=True,
        )
        load_after = os.getloadavg()
        measured = json.loads(child.stdout.strip().splitlines()[-1])
        fingerprint = digest_fingerprint(url)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "database": "postgresql" if database_url else "sqlite",
        "seed": seed_value,
        "population": population,
        "seed_seconds": round(seeded, 1),
        **measured,
        "people_per_second": round(people / measured["seconds"], 1),
        "cpu_ms_per_person": round(1000 * measured["cpu_seconds"] / people, 2),
        "statements_per_person": round(measured["statements"] / people, 2),
        "digests_fingerprint": fingerprint,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "goal_seconds": GOAL_SECONDS,
        "goal_rss_mb": GOAL_RSS_MB,
    }


def summary(results: dict[str, Any]) -> str:
    scaled = results["seconds"] * 10_000 / results["population"]["people"]
    met = "met" if results["population"]["people"] >= 10_000 and scaled <= GOAL_SECONDS else "?"
    rss = "met" if results["rss_peak_mb"] <= GOAL_RSS_MB else "NOT met"
    return (
        f"{results['population']['people']} people in {results['seconds']} s "
        f"({results['people_per_second']} people/s; goal 10,000 in ≤ {GOAL_SECONDS:.0f} s: "
        f"{met if scaled <= GOAL_SECONDS else 'NOT met'}), CPU {results['cpu_ms_per_person']} "
        f"ms/person, peak RSS {results['rss_peak_mb']} MB (goal ≤ {GOAL_RSS_MB:.0f}: {rss}; "
        f"before {results['rss_before_mb']}, after {results['rss_after_mb']}), "
        f"{results['statements']} statements ({results['statements_per_person']}/person), "
        f"{results['sent']} sent, {results['nothing_new']} nothing new, "
        f"{results['events_in_outbox']} events, digests {results['digests_fingerprint']}, "
        f"load {results['load_before']} → {results['load_after']}"
    )


def write(runs: list[dict[str, Any]]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "digests.json").write_text(json.dumps(runs, indent=2) + "\n")
    lines = [
        "# One digest round",
        "",
        "Measured by `bench/digest_bench.py` on 2 cores shared with other work: one",
        "`send_due_digests` round in a process of its own, projections filled directly",
        "(see the module's docstring for the population). Goal: 10,000 people in ≤ "
        f"{GOAL_SECONDS:.0f} s, peak RSS ≤ {GOAL_RSS_MB:.0f} MB.",
        "",
        "| run | date | database | people | content | follows | seconds | people/s | "
        "CPU ms/person | statements/person | RSS before / peak / after MB | sent | "
        "digests | load before → after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        p = r["population"]
        lines.append(
            f"| {r.get('label', '')} | {r['date']} | {r['database']} | {p['people']} | "
            f"{p['content']} | {p['follows_active']} | {r['seconds']} | "
            f"{r['people_per_second']} | {r['cpu_ms_per_person']} | "
            f"{r['statements_per_person']} | {r['rss_before_mb']} / {r['rss_peak_mb']} / "
            f"{r['rss_after_mb']} | {r['sent']} | {r['digests_fingerprint']} | "
            f"{r['load_before']} → {r['load_after']} |"
        )
    lines.append("")
    lines.append(
        "`digests` is a hash of every `DigestReady` event recorded (recipient, sections, "
        "items in order): equal hashes for the same population mean the same digests."
    )
    (RESULTS / "digests.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="people")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--label", default="", help="names the run in the results")
    parser.add_argument("--append", action="store_true", help="add to the results, not replace")
    parser.add_argument("--round-only", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.round_only:
        print(json.dumps(round_in_this_process(args.round_only)))
        return
    results = {"label": args.label, **run(args.n, args.database_url, args.seed)}
    runs = []
    if args.append and (RESULTS / "digests.json").exists():
        runs = json.loads((RESULTS / "digests.json").read_text())
    write([*runs, results])
    print(summary(results))


if __name__ == "__main__":
    main()
