"""Does Knowflow's expert ranking predict who answers a question? Real Stack Exchange data.

    .venv/bin/python -m bench.expertise_eval                          # both sites, both engines
    .venv/bin/python -m bench.expertise_eval --engines embedded --sites cardano
    .venv/bin/python -m bench.expertise_eval --semantic off,on --out expertise-semantic

Protocol (issue 8), per site (`deploy/stackexchange.py` turns its dump into the Q&A
events: questions, answers, comments, votes, acceptances, users):

1. order the questions by creation time; the test set is the questions in the last 20 %
   of that order that have an accepted answer written by someone other than the asker
   (a self-accepted answer cannot be predicted by any method that excludes the asker);
2. start nats-server and the search service (uvicorn) as real processes on 127.0.0.1 and
   replay the site through JetStream in time order (CloudEvents stamped with the site's
   times, as the outbox relay publishes them). Before each test question, everything
   created before it (and nothing after) is published and applied by every search
   consumer (and, for OpenSearch, refreshed);
3. ask as the routing path does, as the asker, with the question as asked:
   `GET /experts?q=<title + body>&tag=<tag>...&limit=100` (the asker's token);
4. score the rank of the accepted answerer: MRR, hit@5, hit@10, over all cases and over
   the cold-start cases (the accepted answerer had never answered before) separately.

Baselines on the same cases and the same history (what was created before the question):
most active answerer; most answers on the question's tags (summed over its tags); BM25
(k1 1.2, b 0.75, no stemming) of the question's title + body over one document per
person (their past questions and answers); most answers in the last 30 days. The asker
is removed from every method's ranking; ties go to the smaller user id.

`--semantic off,on` runs each engine twice, without and with the embedding model (issue 12:
meaning as a feature of the ranking; the model embeds the replayed content through the
`search-embeddings` consumer, which is settled too), and reports each figure with a 95 %
bootstrap interval over the cases, and the paired difference with it ("+ meaning" minus
without, resampling the same cases for both).

Weights are fixed in `services/search/engines/expertise.py` by principle (see its
docstring), not fitted to these sites; the "fit on one, test on the other" table picks
the best baseline on one site and compares Knowflow with it on the other.
Writes bench/results/expertise.md and expertise.json (`--out` names other files).
"""

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import secrets
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.js.errors import NotFoundError

from bench.gateway_bench import uvicorn_process
from bench.search_bench import drop_prefix, jwks_server, wait_ready
from deploy.stackexchange import DATA, Site, TimedEvent, load_site, site_events, user_id
from services.search.engines.base import MAX_EXPERT_QUERY_CHARS, STOP_WORDS
from shared.auth import TokenIssuer
from shared.events.bus import Bus
from shared.events.contracts import AnswerCreated, QuestionCreated
from shared.events.envelope import subject_for, wrap
from shared.ids import utcnow
from shared.natsserver import free_port, start_nats_server

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CONSUMERS = ("search-content", "search-users", "search-thanks", "search-votes")
EMBEDDINGS = "search-embeddings"  # only with the model on
MEANING = " + meaning"  # a run label's suffix with the embedding model on
BOOTSTRAP = 2000
EXPERTS_LIMIT = 100  # the endpoint's maximum
TEST_SHARE = 0.2
RECENT = timedelta(days=30)
KNOWFLOW = "Knowflow /experts (q + tags, as the asker)"
BASELINES = (
    "most active answerer",
    "answers on the question's tags",
    "BM25 over each person's questions and answers",
    "answered in the last 30 days",
)
TARGET_RATIO, TARGET_HIT5, TARGET_COLD_HIT10 = 1.3, 0.65, 0.2
_WORD = re.compile(r"[^\W_]+")

Ranking = list[UUID]


@dataclass(frozen=True)
class Case:
    """A test question, as asked, and who wrote its accepted answer."""

    question_id: int
    asked_at: datetime
    asker: UUID
    accepted: UUID
    title: str
    text: str
    tags: tuple[str, ...]
    cold: bool  # the accepted answerer had never answered before


@dataclass
class Scores:
    n: int = 0
    mrr: float = 0.0
    hit5: float = 0.0
    hit10: float = 0.0


@dataclass
class MethodFigures:
    method: str
    all: Scores
    warm: Scores
    cold: Scores
    empty: int = 0  # cases for which the method proposed nobody
    # 95 % bootstrap intervals over the cases, per figure (mrr, hit5, hit10)
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class EngineRun:
    engine: str
    events: int
    seconds: float
    queries: int
    query_ms_p50: float
    dead_letters: int
    semantic: str = "off"  # the model's state in /readyz (on: the model the run used)
    meaning_cases: int = 0  # queries where someone's reason names meaning


@dataclass
class SiteFigures:
    site: str
    host: str
    questions: int
    answers: int
    comments: int
    users: int
    test_questions: int
    self_accepted: int
    cases: int
    cold_cases: int
    skipped: dict[str, int]
    methods: list[MethodFigures] = field(default_factory=list)
    runs: list[EngineRun] = field(default_factory=list)
    attribution: str = ""


# --- the test set ---------------------------------------------------------------------


def test_cases(site: Site) -> tuple[list[Case], int, int]:
    """The cases, the number of test questions, and how many were self-accepted."""
    ordered = sorted(site.questions.values(), key=lambda q: (q.created_at, q.id))
    tail = ordered[int(len(ordered) * (1 - TEST_SHARE)) :]
    first_answer: dict[int, datetime] = {}
    for earlier in site.answers.values():
        seen = first_answer.get(earlier.owner)
        first_answer[earlier.owner] = min(seen, earlier.created_at) if seen else earlier.created_at
    cases, self_accepted = [], 0
    for question in tail:
        answer = site.answers.get(question.accepted_answer_id or 0)
        if answer is None:
            continue
        if answer.owner == question.owner:
            self_accepted += 1
            continue
        cases.append(
            Case(
                question_id=question.id,
                asked_at=question.created_at,
                asker=user_id(site.host, question.owner),
                accepted=user_id(site.host, answer.owner),
                title=question.title,
                text=question.text,
                tags=question.tags,
                cold=first_answer[answer.owner] >= question.created_at,
            )
        )
    return cases, len(tail), self_accepted


# --- scoring --------------------------------------------------------------------------


def rank_of(ranking: Ranking, person: UUID) -> int | None:
    for position, candidate in enumerate(ranking, start=1):
        if candidate == person:
            return position
    return None


def score(ranks: Sequence[int | None]) -> Scores:
    n = len(ranks)
    if not n:
        return Scores()
    return Scores(
        n=n,
        mrr=round(sum(1 / r for r in ranks if r) / n, 3),
        hit5=round(sum(1 for r in ranks if r and r <= 5) / n, 3),
        hit10=round(sum(1 for r in ranks if r and r <= 10) / n, 3),
    )


def evaluate(method: str, cases: Sequence[Case], rankings: Sequence[Ranking]) -> MethodFigures:
    ranks = [rank_of(r, case.accepted) for case, r in zip(cases, rankings, strict=True)]
    return MethodFigures(
        method=method,
        all=score(ranks),
        warm=score([r for case, r in zip(cases, ranks, strict=True) if not case.cold]),
        cold=score([r for case, r in zip(cases, ranks, strict=True) if case.cold]),
        empty=sum(1 for r in rankings if not r),
        ci=interval(ranks),
    )


FIGURES: dict[str, Callable[[int | None], float]] = {
    "mrr": lambda r: 1 / r if r else 0.0,
    "hit5": lambda r: 1.0 if r and r <= 5 else 0.0,
    "hit10": lambda r: 1.0 if r and r <= 10 else 0.0,
}


def _bootstrap(values: Sequence[float], seed: int = 12) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of the mean over resamples of the cases."""
    if not values:
        return (0.0, 0.0)
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(BOOTSTRAP))
    return (round(means[int(0.025 * BOOTSTRAP)], 3), round(means[int(0.975 * BOOTSTRAP) - 1], 3))


def interval(ranks: Sequence[int | None]) -> dict[str, tuple[float, float]]:
    return {name: _bootstrap([value(r) for r in ranks]) for name, value in FIGURES.items()}


def paired_difference(
    cases: Sequence[Case], without: Sequence[Ranking], with_: Sequence[Ranking]
) -> dict[str, dict[str, float]]:
    """Per figure: the mean difference (with minus without) and its 95 % paired bootstrap interval."""
    a = [rank_of(r, case.accepted) for case, r in zip(cases, without, strict=True)]
    b = [rank_of(r, case.accepted) for case, r in zip(cases, with_, strict=True)]
    found = {}
    for name, value in FIGURES.items():
        deltas = [value(y) - value(x) for x, y in zip(a, b, strict=True)]
        low, high = _bootstrap(deltas)
        found[name] = {
            "delta": round(sum(deltas) / len(deltas), 3) if deltas else 0.0,
            "low": low,
            "high": high,
            "better": sum(1 for d in deltas if d > 0),
            "worse": sum(1 for d in deltas if d < 0),
        }
    return found


def ranked_by(totals: dict[UUID, float], asker: UUID) -> Ranking:
    """People by total, descending, then by id; the asker removed."""
    people = [p for p, v in totals.items() if v > 0 and p != asker]
    return sorted(people, key=lambda p: (-totals[p], str(p)))


# --- baselines, fed by the same events in the same order ------------------------------


def words(text: str) -> list[str]:
    return [w for w in (word.lower() for word in _WORD.findall(text)) if w not in STOP_WORDS]


class History:
    """What the baselines know: every question and answer created so far."""

    def __init__(self) -> None:
        self.tags_of: dict[UUID, tuple[str, ...]] = {}
        self.answers: list[tuple[datetime, UUID]] = []
        self.overall: Counter[UUID] = Counter()
        self.per_tag: dict[str, Counter[UUID]] = defaultdict(Counter)
        self.postings: dict[str, Counter[UUID]] = defaultdict(Counter)
        self.length: Counter[UUID] = Counter()

    def add(self, event: TimedEvent) -> None:
        data = event.data
        if isinstance(data, QuestionCreated):
            self.tags_of[data.content_id] = tuple(data.tags)
            self._document(data.author_id, f"{data.title or ''}\n{data.body}")
        elif isinstance(data, AnswerCreated):
            self.answers.append((data.created_at, data.author_id))
            self.overall[data.author_id] += 1
            for tag in self.tags_of.get(data.thread_id or data.content_id, ()):
                self.per_tag[tag][data.author_id] += 1
            self._document(data.author_id, data.body)

    def _document(self, person: UUID, text: str) -> None:
        tokens = words(text)
        self.length[person] += len(tokens)
        for token, count in Counter(tokens).items():
            self.postings[token][person] += count

    def most_active(self, case: Case) -> Ranking:
        return ranked_by(dict(self.overall), case.asker)

    def on_tags(self, case: Case) -> Ranking:
        totals: Counter[UUID] = Counter()
        for tag in case.tags:
            totals.update(self.per_tag.get(tag, Counter()))
        return ranked_by(dict(totals), case.asker)

    def bm25(self, case: Case, k1: float = 1.2, b: float = 0.75) -> Ranking:
        people = len(self.length)
        if not people:
            return []
        average = sum(self.length.values()) / people
        totals: dict[UUID, float] = defaultdict(float)
        for term in dict.fromkeys(words(f"{case.title}\n{case.text}")):
            posting = self.postings.get(term)
            if not posting:
                continue
            idf = math.log(1 + (people - len(posting) + 0.5) / (len(posting) + 0.5))
            for person, tf in posting.items():
                norm = k1 * (1 - b + b * self.length[person] / average)
                totals[person] += idf * tf * (k1 + 1) / (tf + norm)
        return ranked_by(dict(totals), case.asker)

    def recent(self, case: Case) -> Ranking:
        since = case.asked_at - RECENT
        totals = Counter(person for at, person in self.answers if at >= since)
        return ranked_by(dict(totals), case.asker)


def baseline_rankings(
    timeline: Sequence[TimedEvent], cases: Sequence[Case]
) -> dict[str, list[Ranking]]:
    history = History()
    methods: dict[str, Callable[[Case], Ranking]] = dict(
        zip(
            BASELINES,
            (history.most_active, history.on_tags, history.bm25, history.recent),
            strict=True,
        )
    )
    rankings: dict[str, list[Ranking]] = {name: [] for name in BASELINES}
    position = 0
    for case in cases:
        while position < len(timeline) and timeline[position].at < case.asked_at:
            history.add(timeline[position])
            position += 1
        for name, method in methods.items():
            rankings[name].append(method(case))
    return rankings


# --- Knowflow through the real event path ---------------------------------------------


def encode_at(event: TimedEvent) -> tuple[str, bytes, dict[str, str]]:
    """A CloudEvent stamped with when it happened, as the outbox relay would publish it."""
    envelope = wrap(event.data, source="/knowflow/bench/stackexchange")
    envelope = envelope.model_copy(update={"time": event.at})
    subject = subject_for(envelope.type, envelope.audience)
    return subject, envelope.model_dump_json().encode(), {"Nats-Msg-Id": str(envelope.id)}


async def publish(bus: Bus, messages: Sequence[tuple[str, bytes, dict[str, str]]]) -> None:
    for start in range(0, len(messages), 1000):
        futures = [
            await bus.js.publish_async(subject, payload, headers=headers)
            for subject, payload, headers in messages[start : start + 1000]
        ]
        await asyncio.gather(*futures)


async def settle(bus: Bus, timeout: float, consumers: Sequence[str] = CONSUMERS) -> int:
    """Wait until every search consumer has acked everything; the dead letters so far."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = False
        for name in consumers:
            try:
                info = await bus.js.consumer_info("KNOWFLOW", name)
            except NotFoundError:
                busy = True
                break
            if info.num_pending or info.num_ack_pending:
                busy = True
                break
        if not busy:
            parked = await bus.js.stream_info(bus.dead_letter_stream)
            return int(parked.state.messages)
        await asyncio.sleep(0.02)
    raise TimeoutError(f"search consumers still busy after {timeout}s")


async def ask_all(
    *,
    base: str,
    nats_url: str,
    timeline: Sequence[TimedEvent],
    cases: Sequence[Case],
    issuer: TokenIssuer,
    refresh_url: str | None,
    timeout: float,
    label: str,
    consumers: Sequence[str] = CONSUMERS,
) -> tuple[list[Ranking], list[float], int, int]:
    """Replay in time order, asking each test question when it is asked."""
    bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="bench-expertise")
    rankings, timings, position, parked, by_meaning = [], [], 0, 0, 0
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            for number, case in enumerate(cases, start=1):
                batch = []
                while position < len(timeline) and timeline[position].at < case.asked_at:
                    batch.append(encode_at(timeline[position]))
                    position += 1
                await publish(bus, batch)
                parked = await settle(bus, timeout, consumers)
                if refresh_url:
                    (await client.post(refresh_url)).raise_for_status()
                token = issuer.issue(user_id=case.asker, handle="asker")
                began = time.perf_counter()
                response = await client.get(
                    "/experts",
                    params={
                        "q": f"{case.title}\n\n{case.text}"[:MAX_EXPERT_QUERY_CHARS],
                        "tag": list(case.tags),
                        "limit": EXPERTS_LIMIT,
                    },
                    headers={"Authorization": f"Bearer {token}"},
                )
                timings.append((time.perf_counter() - began) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{label} /experts {response.status_code}: {response.text}")
                experts = response.json()["experts"]
                people = [UUID(e["user_id"]) for e in experts]
                by_meaning += any("in meaning" in e["why"] for e in experts)
                rankings.append([p for p in people if p != case.asker])
                if number % 25 == 0:
                    print(f"{label} {number}/{len(cases)} asked", flush=True)
    finally:
        await bus.close()
    return rankings, timings, parked, by_meaning


def run_engine(
    *,
    engine: str,
    site: Site,
    timeline: Sequence[TimedEvent],
    cases: Sequence[Case],
    args: argparse.Namespace,
    issuer: TokenIssuer,
    jwks_url: str,
    workdir: Path,
) -> tuple[EngineRun, list[Ranking]]:
    workdir.mkdir(parents=True)
    meaning = engine.endswith(MEANING)
    engine = engine.removesuffix(MEANING)
    nats_port, http_port = free_port(), free_port()
    nats = start_nats_server(workdir / "nats", port=nats_port)
    nats_url = f"nats://127.0.0.1:{nats_port}"
    prefix = f"bench-experts-{secrets.token_hex(4)}"
    opensearch = engine == "opensearch"
    env = {
        "KNOWFLOW_DATABASE_URL": f"sqlite:///{workdir / 'search.db'}",
        "KNOWFLOW_NATS_URL": nats_url,
        "KNOWFLOW_SEARCH_URL": args.opensearch_url if opensearch else "",
        "KNOWFLOW_SEARCH_INDEX_PREFIX": prefix,
        "KNOWFLOW_JWKS_URL": jwks_url,
        "KNOWFLOW_LOG_LEVEL": "WARNING",
        "KNOWFLOW_SEMANTIC_MODEL": args.model if meaning else "off",
    }
    base = f"http://127.0.0.1:{http_port}"
    label = f"[{site.host} {engine}{MEANING if meaning else ''}]"
    started = time.monotonic()
    try:
        with uvicorn_process(
            "services.search.main:app",
            port=http_port,
            env=env,
            workers=1,
            log=workdir / "search.log",
        ):
            wait_ready(base, 60)
            semantic = httpx.get(f"{base}/readyz", timeout=10).json().get("semantic", {})
            state = semantic.get("model", "") if semantic.get("state") == "on" else "off"
            if meaning and state == "off":
                raise RuntimeError(f"{label} the model is not on: {semantic}")
            rankings, timings, parked, by_meaning = asyncio.run(
                ask_all(
                    base=base,
                    nats_url=nats_url,
                    timeline=timeline,
                    cases=cases,
                    issuer=issuer,
                    refresh_url=f"{args.opensearch_url}/{prefix}-content/_refresh"
                    if opensearch
                    else None,
                    timeout=args.timeout,
                    label=label,
                    consumers=(*CONSUMERS, EMBEDDINGS) if meaning else CONSUMERS,
                )
            )
    finally:
        nats.terminate()
        nats.wait(timeout=10)
        if opensearch:
            drop_prefix(args.opensearch_url, prefix)
    seconds = time.monotonic() - started
    timings.sort()
    print(f"{label} {len(cases)} questions asked in {seconds:.0f}s", flush=True)
    published = sum(1 for event in timeline if event.at < cases[-1].asked_at) if cases else 0
    run = EngineRun(
        engine=engine + (MEANING if meaning else ""),
        events=published,
        seconds=round(seconds, 1),
        queries=len(cases),
        query_ms_p50=round(timings[len(timings) // 2], 1) if timings else 0.0,
        dead_letters=parked,
        semantic=state,
        meaning_cases=by_meaning,
    )
    return run, rankings


# --- the run and its report ----------------------------------------------------------


def run_site(
    name: str, *, args: argparse.Namespace, issuer: TokenIssuer, jwks_url: str, tmp: Path
) -> tuple[SiteFigures, list[Case], dict[str, list[Ranking]]]:
    site = load_site(args.data / name)
    timeline = site_events(site)
    cases, tested, self_accepted = test_cases(site)
    figures = SiteFigures(
        site=name,
        host=site.host,
        questions=len(site.questions),
        answers=len(site.answers),
        comments=len(site.comments),
        users=len(site.users),
        test_questions=tested,
        self_accepted=self_accepted,
        cases=len(cases),
        cold_cases=sum(1 for case in cases if case.cold),
        skipped=dict(site.skipped),
        attribution=site.attribution,
    )
    print(
        f"[{site.host}] {tested} test questions, {len(cases)} cases "
        f"({figures.cold_cases} cold-start)",
        flush=True,
    )
    rankings = baseline_rankings(timeline, cases)
    for engine in args.engines:
        run, found = run_engine(
            engine=engine,
            site=site,
            timeline=timeline,
            cases=cases,
            args=args,
            issuer=issuer,
            jwks_url=jwks_url,
            workdir=tmp / f"{name}-{engine}".replace(MEANING, "-meaning"),
        )
        figures.runs.append(run)
        rankings[f"{KNOWFLOW}, {engine}"] = found
    figures.methods = [evaluate(method, cases, found) for method, found in rankings.items()]
    return figures, cases, rankings


def table(methods: Sequence[MethodFigures]) -> list[str]:
    lines = [
        "| method | cases | MRR | hit@5 | hit@10 | warm MRR | warm hit@5 | cold cases | cold MRR "
        "| cold hit@10 | nobody proposed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        lines.append(
            f"| {m.method} | {m.all.n} | {m.all.mrr} | {m.all.hit5} | {m.all.hit10} | {m.warm.mrr} "
            f"| {m.warm.hit5} | {m.cold.n} | {m.cold.mrr} | {m.cold.hit10} | {m.empty} |"
        )
    return lines


def ci_table(methods: Sequence[MethodFigures]) -> list[str]:
    lines = [
        "95 % bootstrap intervals over the cases:",
        "",
        "| method | MRR | hit@5 | hit@10 |",
        "|---|---|---|---|",
    ]
    for m in methods:
        cells = [
            f"{value} [{m.ci[name][0]}, {m.ci[name][1]}]"
            for name, value in (("mrr", m.all.mrr), ("hit5", m.all.hit5), ("hit10", m.all.hit10))
        ]
        lines.append(f"| {m.method} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def best_baseline(methods: Sequence[MethodFigures]) -> MethodFigures:
    return max((m for m in methods if m.method in BASELINES), key=lambda m: (m.all.mrr, m.method))


def targets(pooled: Sequence[MethodFigures], engines: Sequence[str]) -> list[dict[str, Any]]:
    best = best_baseline(pooled)
    found = []
    for engine in engines:
        ours = next(m for m in pooled if m.method == f"{KNOWFLOW}, {engine}")
        ratio = ours.all.mrr / best.all.mrr if best.all.mrr else math.inf
        found += [
            {
                "engine": engine,
                "figure": f"MRR / best baseline ({best.method}, {best.all.mrr})",
                "value": round(ratio, 2),
                "goal": f">= {TARGET_RATIO}",
                "met": ratio >= TARGET_RATIO,
            },
            {
                "engine": engine,
                "figure": "hit@5",
                "value": ours.all.hit5,
                "goal": f">= {TARGET_HIT5}",
                "met": ours.all.hit5 >= TARGET_HIT5,
            },
            {
                "engine": engine,
                "figure": "cold-start hit@10",
                "value": ours.cold.hit10,
                "goal": f">= {TARGET_COLD_HIT10}",
                "met": ours.cold.hit10 >= TARGET_COLD_HIT10,
            },
        ]
    return found


def transfer(sites: Sequence[SiteFigures], engines: Sequence[str]) -> list[dict[str, Any]]:
    """Fit on one site (choose its best baseline), test on the other (compare with it)."""
    rows = []
    for fit in sites:
        chosen = best_baseline(fit.methods).method
        for test in sites:
            if test is fit:
                continue
            theirs = next(m for m in test.methods if m.method == chosen)
            for engine in engines:
                ours = next(m for m in test.methods if m.method == f"{KNOWFLOW}, {engine}")
                rows.append(
                    {
                        "fit": fit.site,
                        "test": test.site,
                        "baseline": chosen,
                        "engine": engine,
                        "baseline_mrr": theirs.all.mrr,
                        "knowflow_mrr": ours.all.mrr,
                        "ratio": round(ours.all.mrr / theirs.all.mrr, 2)
                        if theirs.all.mrr
                        else None,
                    }
                )
    return rows


def meaning_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """With minus without the model, per scope and engine: mean, 95 % paired interval."""
    if not rows:
        return []
    lines = [
        "## Meaning: with minus without the embedding model (paired over the same cases)",
        "",
        "Each cell: the difference of the means, [95 % paired bootstrap interval], and how "
        "many cases got better / worse.",
        "",
        "| scope | engine | cases | MRR | hit@5 | hit@10 |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            f"{d['delta']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] ({d['better']}/{d['worse']})"
            for d in (row["figures"][name] for name in FIGURES)
        ]
        lines.append(
            f"| {row['scope']} | {row['engine']} | {row['cases']} | " + " | ".join(cells) + " |"
        )
    return [*lines, ""]


def meaning_rows(
    scopes: Sequence[tuple[str, Sequence[Case], dict[str, list[Ranking]]]], engines: Sequence[str]
) -> list[dict[str, Any]]:
    rows = []
    for scope, cases, rankings in scopes:
        for engine in engines:
            without = rankings.get(f"{KNOWFLOW}, {engine}")
            with_ = rankings.get(f"{KNOWFLOW}, {engine}{MEANING}")
            if without is None or with_ is None:
                continue
            rows.append(
                {
                    "scope": scope,
                    "engine": engine,
                    "cases": len(cases),
                    "figures": paired_difference(cases, without, with_),
                }
            )
    return rows


def write_results(
    sites: list[SiteFigures],
    pooled: list[MethodFigures],
    meta: dict[str, Any],
    meaning: Sequence[dict[str, Any]] = (),
) -> str:
    engines = meta["config"]["engines"]
    goals = targets(pooled, engines)
    moved = transfer(sites, engines) if len(sites) > 1 else []
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = meta["config"]["out"]
    payload = {
        **meta,
        "pooled": [asdict(m) for m in pooled],
        "targets": goals,
        "transfer": moved,
        "meaning": list(meaning),
        "sites": [asdict(site) for site in sites],
    }
    (RESULTS / f"{out}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    lines = [
        "# Who answers? Expert ranking against the accepted answerer (Stack Exchange)",
        "",
        f"Date: {meta['date']}. Machine: {meta['machine']}. Run: {meta['seconds']} s. "
        f"Engines: {', '.join(engines)}.",
        "",
        "Protocol: questions in time order; test = the last 20 % that have an accepted answer "
        "by someone other than the asker. The site is replayed through JetStream into the "
        "search service in time order; each test question is asked when only what was created "
        "before it has been applied, as the asker, with its title + body and tags "
        "(`GET /experts?q=…&tag=…`). Figures: rank of the accepted answerer (MRR, hit@k); "
        "cold-start = the accepted answerer had never answered before. Baselines see the same "
        "history; the asker is removed from every ranking. Votes come from Votes.xml with their "
        "dates (only votes cast before the question count).",
        "",
        "## Targets (pooled over both sites)",
        "",
        "| engine | figure | value | goal | met |",
        "|---|---|---|---|---|",
        *(
            f"| {g['engine']} | {g['figure']} | {g['value']} | {g['goal']} | "
            f"{'yes' if g['met'] else '**no**'} |"
            for g in goals
        ),
        "",
        *meaning_table(meaning),
        "## Pooled",
        "",
        *table(pooled),
        "",
        *ci_table(pooled),
    ]
    if moved:
        lines += [
            "## Fit on one site, test on the other",
            "",
            "Knowflow's weights are set by principle and fitted on neither site; the baseline is "
            "the one that is best on the fitting site.",
            "",
            "| fit on | test on | baseline chosen | engine | baseline MRR | Knowflow MRR | ratio |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {r['fit']} | {r['test']} | {r['baseline']} | {r['engine']} | {r['baseline_mrr']} "
                f"| {r['knowflow_mrr']} | {r['ratio']} |"
                for r in moved
            ),
            "",
        ]
    for site in sites:
        lines += [
            f"## {site.host}",
            "",
            f"{site.questions} questions, {site.answers} answers, {site.comments} comments, "
            f"{site.users} people; {site.test_questions} test questions, {site.self_accepted} "
            f"self-accepted (left out), {site.cases} cases, {site.cold_cases} cold-start.",
            "",
            *table(site.methods),
            "",
            *ci_table(site.methods),
            *(
                f"- {r.engine}: {r.events} events replayed and {r.queries} questions asked in "
                f"{r.seconds} s; /experts p50 {r.query_ms_p50} ms; {r.dead_letters} dead letters; "
                f"model {r.semantic}"
                + (
                    f", someone's reason names meaning in {r.meaning_cases} queries."
                    if r.semantic != "off"
                    else "."
                )
                for r in site.runs
            ),
            "",
            site.attribution,
            "",
        ]
    text = "\n".join(lines)
    (RESULTS / f"{out}.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", default="quantumcomputing,cardano")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--engines", default="embedded,opensearch")
    parser.add_argument(
        "--opensearch-url",
        default=os.environ.get("KNOWFLOW_TEST_OPENSEARCH_URL", "http://127.0.0.1:9200"),
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="bound per settle")
    parser.add_argument(
        "--semantic",
        default="off",
        help="off, on, or off,on: each engine without and/or with the embedding model",
    )
    parser.add_argument("--model", default="all-minilm-l6-v2-q", help="the embedding model")
    parser.add_argument("--out", default="expertise", help="bench/results/<out>.md and .json")
    args = parser.parse_args()
    modes = [mode.strip() for mode in args.semantic.split(",") if mode.strip()]
    if not modes or set(modes) - {"off", "on"}:
        parser.error("--semantic is off, on, or off,on")
    args.engines = [
        engine + (MEANING if mode == "on" else "")
        for engine in (name.strip() for name in args.engines.split(",") if name.strip())
        for mode in modes
    ]
    issuer = TokenIssuer(
        Ed25519PrivateKey.generate(),
        issuer="knowflow-identity",
        audience="knowflow",
        ttl_seconds=3600,
    )
    started = time.monotonic()
    sites: list[SiteFigures] = []
    all_cases: list[Case] = []
    all_rankings: dict[str, list[Ranking]] = defaultdict(list)
    scopes: list[tuple[str, Sequence[Case], dict[str, list[Ranking]]]] = []
    with (
        tempfile.TemporaryDirectory(prefix="knowflow-expertise-") as tmp,
        jwks_server(issuer) as jwks_url,
    ):
        for name in (s.strip() for s in args.sites.split(",") if s.strip()):
            figures, cases, rankings = run_site(
                name, args=args, issuer=issuer, jwks_url=jwks_url, tmp=Path(tmp)
            )
            sites.append(figures)
            scopes.append((name, cases, rankings))
            all_cases += cases
            for method, found in rankings.items():
                all_rankings[method] += found
    pooled = [evaluate(method, all_cases, found) for method, found in all_rankings.items()]
    meta = {
        "date": utcnow().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "seconds": round(time.monotonic() - started, 1),
        "config": {**vars(args), "data": str(args.data)},
    }
    engines = [engine for engine in args.engines if not engine.endswith(MEANING)]
    meaning = meaning_rows([("pooled", all_cases, all_rankings), *scopes], engines)
    print(write_results(sites, pooled, meta, meaning))


if __name__ == "__main__":
    main()
