"""Does `GET /experts` predict who answers a question? Measured on real Stack Exchange data.

    .venv/bin/python -m bench.expertise_eval                       # both sites, ~2 min
    .venv/bin/python -m bench.expertise_eval --sites cardano --engine opensearch
    .venv/bin/python -m bench.expertise_eval --upvote-thanks 1     # upvotes count as thanks

For each site (`bench/stackexchange.py` turns its dump into events):

1. split by time: the first `--history` share of questions by date is history, the
   rest is the test; history = every event before the first test question (users,
   questions, answers, and thanks whose acceptance vote came before it);
2. start nats-server and the search service (uvicorn, 1 worker) as real processes on
   127.0.0.1, publish the history as CloudEvents through JetStream (as the outbox relay
   does, the envelope time = when it happened on the site) and wait until the search
   consumers have acked everything;
3. for each test question with at least one answer by someone who wrote in the history
   (other than the asker), ask `GET /experts?topic=<tag>&limit=100` for each of its
   tags with a real token, merge the per-tag rankings by summed score (ties: best
   per-tag rank, then id) and drop the asker; score hit@1/5/10 and MRR of the actual
   answerers (any answerer, and the accepted one separately).

Baselines, from the same history: (a) the most active answerers overall, (b) the most
active answerers per tag (answers counted, summed over the question's tags; no recency,
kind or thanks). Ties are broken by user id, as the service does.

The score's recency decay is against the service's clock ("now"), while the data is from
2018 and 2021, so each site runs twice: with the dates as recorded, and with every date
shifted so that the split point is today (same relative ages, as if the history had just
happened). The service is not changed for either.
Writes bench/results/expertise.md and expertise.json (`--output` names another pair).
"""

import argparse
import asyncio
import json
import os
import platform
import secrets
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.js.errors import NotFoundError

from bench.gateway_bench import uvicorn_process
from bench.search_bench import drop_prefix, jwks_server, publish_all, wait_ready
from deploy.stackexchange import (
    DATA,
    Site,
    TimedEvent,
    content_id,
    load_site,
    site_events,
    user_id,
)
from shared.auth import TokenIssuer
from shared.events.bus import Bus
from shared.events.contracts import PostCreated
from shared.events.envelope import subject_for, wrap
from shared.ids import new_id, utcnow
from shared.natsserver import free_port, start_nats_server

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CONSUMERS = ("search-content", "search-users", "search-thanks")
EXPERTS_LIMIT = 100  # the endpoint's maximum
CUTOFFS = (1, 5, 10)

Ranking = list[UUID]


@dataclass(frozen=True)
class Case:
    """A test question and who actually answered it (known = wrote in the history)."""

    question_id: int
    tags: tuple[str, ...]
    asker: UUID
    answerers: frozenset[UUID]  # known, not the asker
    accepted: UUID | None  # the accepted answer's author, when known and not the asker


@dataclass
class Scores:
    n: int = 0
    hits: dict[str, float] = field(default_factory=dict)
    mrr: float = 0.0


@dataclass
class MethodFigures:
    method: str
    any_answerer: Scores
    accepted: Scores
    empty: int = 0  # questions for which the method proposed nobody


@dataclass
class ServiceRun:
    dates: str  # "recorded" or "shifted"
    shift_days: int
    events_published: int
    publish_seconds: float
    settle_seconds: float
    queries: int
    query_ms_p50: float
    dead_letters: int
    zero_scores: float  # share of returned experts whose score rounds to 0
    method: MethodFigures


@dataclass
class SiteFigures:
    site: str
    host: str
    questions: int
    answers: int
    users: int
    split_at: str
    history_questions: int
    test_questions: int
    eligible: int
    eligible_with_accepted: int
    history_events: dict[str, int]
    skipped: dict[str, int]
    baselines: list[MethodFigures]
    runs: list[ServiceRun] = field(default_factory=list)
    attribution: str = ""


# --- the split and the ground truth --------------------------------------------------


def split_point(site: Site, history_share: float) -> datetime:
    """The creation time of the first test question."""
    dates = sorted(question.created_at for question in site.questions.values())
    return dates[min(len(dates) - 1, int(len(dates) * history_share))]


def test_cases(site: Site, history: Sequence[TimedEvent], split_at: datetime) -> list[Case]:
    """Test questions with at least one answer by someone who wrote in the history."""
    known = {e.data.author_id for e in history if isinstance(e.data, PostCreated)}
    answers = site.answers_by_question()
    cases = []
    for question in sorted(site.questions.values(), key=lambda q: q.created_at):
        if question.created_at < split_at:
            continue
        asker = user_id(site.host, question.owner)
        answerers = frozenset(
            author
            for author in (user_id(site.host, a.owner) for a in answers[question.id])
            if author in known and author != asker
        )
        if not answerers:
            continue
        accepted = site.answers.get(question.accepted_answer_id or 0)
        accepted_by = user_id(site.host, accepted.owner) if accepted else None
        cases.append(
            Case(
                question_id=question.id,
                tags=question.tags,
                asker=asker,
                answerers=answerers,
                accepted=accepted_by if accepted_by in answerers else None,
            )
        )
    return cases


# --- scoring -------------------------------------------------------------------------


def first_rank(ranking: Ranking, relevant: Iterable[UUID]) -> int | None:
    wanted = set(relevant)
    for position, person in enumerate(ranking, start=1):
        if person in wanted:
            return position
    return None


def score(ranks: Sequence[int | None]) -> Scores:
    n = len(ranks)
    if not n:
        return Scores()
    return Scores(
        n=n,
        hits={
            f"@{k}": round(sum(1 for r in ranks if r is not None and r <= k) / n, 3)
            for k in CUTOFFS
        },
        mrr=round(sum(1 / r for r in ranks if r is not None) / n, 3),
    )


def evaluate(name: str, cases: Sequence[Case], rankings: Sequence[Ranking]) -> MethodFigures:
    """Hit@k and MRR of one method's rankings (the asker already removed)."""
    any_ranks = [first_rank(r, case.answerers) for case, r in zip(cases, rankings, strict=True)]
    accepted_ranks = [
        first_rank(r, [case.accepted])
        for case, r in zip(cases, rankings, strict=True)
        if case.accepted is not None
    ]
    return MethodFigures(
        method=name,
        any_answerer=score(any_ranks),
        accepted=score(accepted_ranks),
        empty=sum(1 for r in rankings if not r),
    )


def ranked_by(totals: dict[UUID, float], tiebreak: dict[UUID, int] | None = None) -> Ranking:
    """People by total, descending; then by `tiebreak` ascending; then by id."""
    order = tiebreak or {}
    return sorted(totals, key=lambda p: (-totals[p], order.get(p, 0), str(p)))


def without(ranking: Ranking, person: UUID) -> Ranking:
    return [p for p in ranking if p != person]


# --- baselines -----------------------------------------------------------------------


def baseline_rankings(
    site: Site, history: Sequence[TimedEvent], cases: Sequence[Case]
) -> list[MethodFigures]:
    """(a) most active answerers overall, (b) most active answerers per tag, by count."""
    tags_of = {content_id(site.host, q.id): q.tags for q in site.questions.values()}
    overall: Counter[UUID] = Counter()
    per_tag: dict[str, Counter[UUID]] = defaultdict(Counter)
    for event in history:
        data = event.data
        if isinstance(data, PostCreated) and data.kind == "reply" and data.thread_id:
            overall[data.author_id] += 1
            for tag in tags_of.get(data.thread_id, ()):
                per_tag[tag][data.author_id] += 1
    global_ranking = ranked_by(dict(overall))
    by_tag = []
    for case in cases:
        totals: Counter[UUID] = Counter()
        for tag in case.tags:
            totals.update(per_tag.get(tag, Counter()))
        by_tag.append(without(ranked_by(dict(totals)), case.asker))
    return [
        evaluate(
            "(a) most active answerers overall",
            cases,
            [without(global_ranking, case.asker) for case in cases],
        ),
        evaluate("(b) most active answerers per tag (count)", cases, by_tag),
    ]


# --- Knowflow through the real event path --------------------------------------------


def shifted(event: TimedEvent, shift: timedelta) -> TimedEvent:
    """The same event, `shift` later (content keeps its relative age)."""
    if not shift:
        return event
    data = event.data
    if isinstance(data, PostCreated):
        data = data.model_copy(
            update={"created_at": data.created_at + shift, "updated_at": data.updated_at + shift}
        )
    return TimedEvent(event.at + shift, data)


def encode_at(event: TimedEvent) -> tuple[str, bytes, dict[str, str]]:
    """A CloudEvent stamped with when it happened, as the outbox relay would publish it."""
    envelope = wrap(event.data, source="/knowflow/bench/stackexchange")
    envelope = envelope.model_copy(update={"time": event.at})
    subject = subject_for(envelope.type, envelope.audience)
    return subject, envelope.model_dump_json().encode(), {"Nats-Msg-Id": str(envelope.id)}


async def consumers_state(nats_url: str) -> tuple[bool, int]:
    """Whether search's consumers have acked everything, and how many events were parked."""
    bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="bench-probe")
    try:
        for name in CONSUMERS:
            try:
                info = await bus.js.consumer_info("KNOWFLOW", name)
            except NotFoundError:
                return False, 0
            if info.num_pending or info.num_ack_pending:
                return False, 0
        parked = await bus.js.stream_info(bus.dead_letter_stream)
        return True, int(parked.state.messages)
    finally:
        await bus.close()


def wait_settled(nats_url: str, timeout: float) -> int:
    """Dead letters, once every search consumer has caught up (raises after `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, parked = asyncio.run(consumers_state(nats_url))
        if done:
            return parked
        time.sleep(0.25)
    raise TimeoutError(f"search consumers still busy after {timeout}s")


def merge_tag_rankings(per_tag: Sequence[list[tuple[UUID, float]]]) -> Ranking:
    """Summed score over the tags; ties by best rank in any tag, then id."""
    totals: dict[UUID, float] = defaultdict(float)
    best: dict[UUID, int] = {}
    for ranking in per_tag:
        for position, (person, value) in enumerate(ranking):
            totals[person] += value
            best[person] = min(best.get(person, position), position)
    return ranked_by(dict(totals), best)


def run_service(
    *,
    site: Site,
    history: Sequence[TimedEvent],
    cases: Sequence[Case],
    split_at: datetime,
    dates: str,
    args: argparse.Namespace,
    issuer: TokenIssuer,
    jwks_url: str,
    workdir: Path,
) -> ServiceRun:
    """Publish the history to a fresh NATS + search service and ask it about every case."""
    shift = timedelta(days=(utcnow() - split_at).days) if dates == "shifted" else timedelta()
    messages = [encode_at(shifted(event, shift)) for event in history]
    workdir.mkdir(parents=True)
    nats_port, http_port = free_port(), free_port()
    nats = start_nats_server(workdir / "nats", port=nats_port)
    nats_url = f"nats://127.0.0.1:{nats_port}"
    prefix = f"bench-experts-{secrets.token_hex(4)}"
    opensearch = args.engine == "opensearch"
    env = {
        "KNOWFLOW_DATABASE_URL": f"sqlite:///{workdir / 'search.db'}",
        "KNOWFLOW_NATS_URL": nats_url,
        "KNOWFLOW_SEARCH_URL": args.opensearch_url if opensearch else "",
        "KNOWFLOW_SEARCH_INDEX_PREFIX": prefix,
        "KNOWFLOW_JWKS_URL": jwks_url,
        "KNOWFLOW_LOG_LEVEL": "WARNING",
    }
    base = f"http://127.0.0.1:{http_port}"
    token = issuer.issue(user_id=new_id(), handle="bench")
    label = f"[{site.host} {dates}]"
    try:
        with uvicorn_process(
            "services.search.main:app",
            port=http_port,
            env=env,
            workers=1,
            log=workdir / "search.log",
        ):
            wait_ready(base, 60)
            print(f"{label} publishing {len(messages)} events", flush=True)
            started = time.monotonic()
            asyncio.run(publish_all(nats_url, messages))
            published = time.monotonic() - started
            parked = wait_settled(nats_url, args.timeout)
            if opensearch:
                time.sleep(1.5)  # the index refreshes once a second
            settled = time.monotonic() - started
            print(f"{label} processed in {settled:.1f}s ({parked} dead letters)", flush=True)

            tags = sorted({tag for case in cases for tag in case.tags})
            answers: dict[str, list[tuple[UUID, float]]] = {}
            timings = []
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
            ) as client:
                for tag in tags:
                    began = time.perf_counter()
                    response = client.get("/experts", params={"topic": tag, "limit": EXPERTS_LIMIT})
                    timings.append((time.perf_counter() - began) * 1000)
                    if response.status_code == 400:  # a tag without words, e.g. "c++" → "c"
                        answers[tag] = []
                        continue
                    response.raise_for_status()
                    answers[tag] = [
                        (UUID(expert["user_id"]), float(expert["score"]))
                        for expert in response.json()["experts"]
                    ]
            returned = [value for ranking in answers.values() for _, value in ranking]
            rankings = [
                without(merge_tag_rankings([answers[tag] for tag in case.tags]), case.asker)
                for case in cases
            ]
            timings.sort()
            return ServiceRun(
                dates=dates,
                shift_days=shift.days,
                events_published=len(messages),
                publish_seconds=round(published, 2),
                settle_seconds=round(settled, 2),
                queries=len(tags),
                query_ms_p50=round(timings[len(timings) // 2], 2) if timings else 0.0,
                dead_letters=parked,
                zero_scores=round(
                    sum(1 for value in returned if value == 0) / max(len(returned), 1), 3
                ),
                method=evaluate(
                    f"Knowflow /experts, per tag, summed ({dates} dates)", cases, rankings
                ),
            )
    finally:
        nats.terminate()
        nats.wait(timeout=10)
        if opensearch:
            drop_prefix(args.opensearch_url, prefix)


# --- the run and its report ----------------------------------------------------------


def run_site(
    name: str, *, args: argparse.Namespace, issuer: TokenIssuer, jwks_url: str, tmp: Path
) -> SiteFigures:
    site = load_site(args.data / name)
    timeline = site_events(site, upvote_thanks=args.upvote_thanks)
    split_at = split_point(site, args.history)
    history = [event for event in timeline if event.at < split_at]
    cases = test_cases(site, history, split_at)
    figures = SiteFigures(
        site=name,
        host=site.host,
        questions=len(site.questions),
        answers=len(site.answers),
        users=len(site.users),
        split_at=split_at.isoformat(),
        history_questions=sum(1 for q in site.questions.values() if q.created_at < split_at),
        test_questions=sum(1 for q in site.questions.values() if q.created_at >= split_at),
        eligible=len(cases),
        eligible_with_accepted=sum(1 for case in cases if case.accepted is not None),
        history_events=dict(
            Counter(
                f"{type(e.data).__name__}"
                + (f" {e.data.kind}" if isinstance(e.data, PostCreated) else "")
                for e in history
            )
        ),
        skipped=dict(site.skipped),
        baselines=baseline_rankings(site, history, cases),
        attribution=site.attribution,
    )
    print(
        f"[{site.host}] split at {split_at:%Y-%m-%d %H:%M}: {figures.history_questions} history "
        f"/ {figures.test_questions} test questions, {len(cases)} evaluable",
        flush=True,
    )
    for dates in args.dates:
        figures.runs.append(
            run_service(
                site=site,
                history=history,
                cases=cases,
                split_at=split_at,
                dates=dates,
                args=args,
                issuer=issuer,
                jwks_url=jwks_url,
                workdir=tmp / f"{name}-{dates}",
            )
        )
    return figures


def table(figures: SiteFigures) -> list[str]:
    lines = [
        "| method | any answerer: hit@1 | hit@5 | hit@10 | MRR | accepted: hit@1 | hit@5 "
        "| hit@10 | MRR | nobody proposed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    methods = [run.method for run in figures.runs] + figures.baselines
    for m in methods:
        a, c = m.any_answerer, m.accepted
        lines.append(
            f"| {m.method} | {a.hits.get('@1')} | {a.hits.get('@5')} | {a.hits.get('@10')} "
            f"| {a.mrr} | {c.hits.get('@1')} | {c.hits.get('@5')} | {c.hits.get('@10')} "
            f"| {c.mrr} | {m.empty} |"
        )
    return lines


def write_results(sites: list[SiteFigures], meta: dict[str, Any], name: str) -> str:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {**meta, "sites": [asdict(site) for site in sites]}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    config = meta["config"]
    lines = [
        "# Expertise search against who really answered (Stack Exchange)",
        "",
        f"Date: {meta['date']}. Machine: {meta['machine']}. Engine: {config['engine']}.",
        f"Split: the first {int(config['history'] * 100)} % of questions by date are history "
        "(with every answer, user and thanks before the first test question); the rest are "
        "the test. A test question counts when someone other than the asker who wrote in the "
        "history answered it. Thanks: the asker's acceptance"
        + (
            f", plus every upvote on answers with ≥ {config['upvote_thanks']} upvotes as a "
            "thanks from a synthetic voter"
            if config["upvote_thanks"] is not None
            else " only (upvotes are not counted)"
        )
        + ". Knowflow: `GET /experts?topic=<tag>&limit=100` per tag of the question, "
        "summed by person, asker removed. hit@k = share of questions with an actual "
        "answerer in the top k; MRR over the same questions (0 when absent).",
        "",
    ]
    for site in sites:
        lines += [
            f"## {site.host}",
            "",
            f"{site.questions} questions, {site.answers} answers, {site.users} users; split at "
            f"{site.split_at[:10]}: {site.history_questions} history / {site.test_questions} "
            f"test questions; evaluable: {site.eligible} (any answerer), "
            f"{site.eligible_with_accepted} (accepted answer by a known person).",
            "",
            *table(site),
            "",
        ]
        for run in site.runs:
            lines.append(
                f"- {run.dates} dates (shift {run.shift_days} days): {run.events_published} "
                f"events processed in {run.settle_seconds}s, {run.dead_letters} dead letters; "
                f"{run.queries} /experts queries, p50 {run.query_ms_p50} ms; "
                f"{int(run.zero_scores * 100)} % of returned scores round to 0."
            )
            if run.zero_scores >= 0.5:
                lines.append(
                    "  With a 90-day half-life, years-old evidence weighs ~1e-6 or less and the "
                    "service rounds scores to 4 places, so people tie at 0 and are ordered by "
                    "user id: a random order among the people on the topic."
                )
        lines += ["", site.attribution, ""]
    text = "\n".join(lines)
    (RESULTS / f"{name}.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", default="quantumcomputing,cardano")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--history", type=float, default=0.7, help="share of questions")
    parser.add_argument(
        "--dates",
        default="recorded,shifted",
        help="recorded: as on the site; shifted: the split point moved to today",
    )
    parser.add_argument(
        "--upvote-thanks",
        type=int,
        default=None,
        metavar="N",
        help="also count each upvote on answers with at least N upvotes as a thanks",
    )
    parser.add_argument("--engine", choices=("embedded", "opensearch"), default="embedded")
    parser.add_argument(
        "--opensearch-url",
        default=os.environ.get("KNOWFLOW_TEST_OPENSEARCH_URL", "http://127.0.0.1:9200"),
    )
    parser.add_argument("--output", default="expertise", help="bench/results/<output>.md and .json")
    parser.add_argument("--timeout", type=float, default=180.0, help="bound per indexing phase")
    args = parser.parse_args()
    args.dates = [name.strip() for name in args.dates.split(",") if name.strip()]
    issuer = TokenIssuer(
        Ed25519PrivateKey.generate(),
        issuer="knowflow-identity",
        audience="knowflow",
        ttl_seconds=7200,
    )
    started = time.monotonic()
    sites = []
    with (
        tempfile.TemporaryDirectory(prefix="knowflow-expertise-") as tmp,
        jwks_server(issuer) as jwks_url,
    ):
        for name in (s.strip() for s in args.sites.split(",") if s.strip()):
            sites.append(run_site(name, args=args, issuer=issuer, jwks_url=jwks_url, tmp=Path(tmp)))
    meta = {
        "date": utcnow().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "seconds": round(time.monotonic() - started, 1),
        "config": {**vars(args), "data": str(args.data)},
    }
    print(write_results(sites, meta, args.output))


if __name__ == "__main__":
    main()
