"""Does `POST /questions/similar` find the question a new one duplicates? Real Stack Exchange data.

    .venv/bin/python -m bench.similar_eval                          # both sites, both engines
    .venv/bin/python -m bench.similar_eval --engine opensearch --sites cardano

Ground truth, from each site's PostLinks.xml (questions only, each unordered pair once):
- duplicates (LinkTypeId 3): the later question of the pair is asked, the earlier one
  (the original, as the site closed it) is the one to find;
- linked (LinkTypeId 1): the same, the earlier question of the pair is the target.

Protocol: nats-server and the search service (uvicorn, 1 worker) run as real processes
on 127.0.0.1. Questions are published as `QuestionCreated` CloudEvents through JetStream
in time order; before each asked question, exactly the questions created before it are
indexed (publish, wait until the consumer has acked everything, refresh OpenSearch), then
the draft goes to `POST /questions/similar` (limit 20) with a real token. Two drafts:
the title alone, and title + body + tags (as the asker would have typed them).

Scores of the target's rank r (absent from the 20 → 0): nDCG@10 = 1/log2(1 + r) for
r ≤ 10 (one relevant item), MRR = 1/r, hit@5. 95 % intervals: percentile bootstrap over
the cases, 2,000 resamples, fixed seed. Baseline: textbook BM25 (k1 1.2, b 0.75) over
title + body as one field, lower-cased words, no stemming, no stop words, no field
weights, over the same "created before" questions.

Nothing here was fitted: the service's weights (title 1, body words 0.3, capped at 20
words; each shared tag multiplies by 1.2; title column 10 : body 1) were set by principle before the first
run, and both sites are reported. Caveat: a linked question's body often contains the
link, and Stack Exchange bodies keep the anchor text, which is often the target's title;
the title-only draft has no such leak.
Writes bench/results/similar.md and similar.json (`--output` names another pair).
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
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.gateway_bench import uvicorn_process
from bench.search_bench import drop_prefix, jwks_server, wait_ready
from deploy.stackexchange import (
    DATA,
    DUPLICATE,
    LINKED,
    Question,
    Site,
    content_id,
    load_post_links,
    load_site,
    user_id,
)
from services.search.semantic.model import DEFAULT_MODEL
from shared.auth import TokenIssuer
from shared.events.bus import Bus
from shared.events.contracts import QuestionCreated
from shared.events.envelope import subject_for, wrap
from shared.ids import new_id, utcnow
from shared.natsserver import free_port, start_nats_server

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LIMIT = 20  # the endpoint's maximum
RESAMPLES = 2000
SEED = 8
DRAFTS = ("title", "title+body+tags")
BASELINE = "plain BM25 (title + body)"  # what each draft is compared with, pairwise
_WORD = re.compile(r"[^\W_]+")

Message = tuple[str, bytes, dict[str, str]]


@dataclass(frozen=True)
class Case:
    """Ask `asked` (the later question of a link); `target` (the earlier one) is to be found."""

    links: str  # "duplicate" or "linked"
    asked: int
    target: int


@dataclass
class Figure:
    n: int
    ndcg10: float
    ndcg10_ci: tuple[float, float]
    mrr: float
    mrr_ci: tuple[float, float]
    hit5: float
    hit5_ci: tuple[float, float]


@dataclass
class Method:
    name: str
    by_links: dict[str, Figure] = field(default_factory=dict)
    ranks: list[int | None] = field(default_factory=list)  # per case, in case order


@dataclass
class Difference:
    """A method minus the baseline on the same cases: mean and paired-bootstrap 95 % CI."""

    method: str
    baseline: str
    n: int
    ndcg10: float
    ndcg10_ci: tuple[float, float]
    mrr: float
    mrr_ci: tuple[float, float]


@dataclass
class SiteResult:
    site: str
    host: str
    questions: int
    cases: dict[str, int]
    baseline: list[Method]
    engines: dict[str, list[Method]] = field(default_factory=dict)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    attribution: str = ""


# --- ground truth ---------------------------------------------------------------------


def cases_of(site: Site, folder: Path) -> list[Case]:
    """Question pairs from PostLinks.xml, the later one asked, each pair once (duplicate wins)."""
    pairs: dict[frozenset[int], Case] = {}
    for link in load_post_links(folder):
        if link.link_type not in (LINKED, DUPLICATE):
            continue
        a, b = site.questions.get(link.post_id), site.questions.get(link.related_post_id)
        if a is None or b is None or a.id == b.id:
            continue
        later, earlier = (a, b) if (a.created_at, a.id) > (b.created_at, b.id) else (b, a)
        kind = "duplicate" if link.link_type == DUPLICATE else "linked"
        key = frozenset((a.id, b.id))
        if key not in pairs or kind == "duplicate":
            pairs[key] = Case(links=kind, asked=later.id, target=earlier.id)
    return sorted(pairs.values(), key=lambda c: (site.questions[c.asked].created_at, c.asked))


def draft_of(question: Question, draft: str) -> dict[str, Any]:
    if draft == "title":
        return {"title": question.title, "limit": LIMIT}
    return {
        "title": question.title,
        "body": question.text[:30_000],
        "tags": [tag for tag in question.tags if re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,49}", tag)],
        "limit": LIMIT,
    }


# --- scoring --------------------------------------------------------------------------


def rank_of(ranking: Sequence[int], target: int) -> int | None:
    for position, item in enumerate(ranking, start=1):
        if item == target:
            return position
    return None


def per_case(rank: int | None) -> tuple[float, float, float]:
    """(nDCG@10, reciprocal rank, hit@5) of one case."""
    if rank is None:
        return 0.0, 0.0, 0.0
    return (1 / math.log2(1 + rank) if rank <= 10 else 0.0), 1 / rank, float(rank <= 5)


def interval(values: Sequence[float], rng: random.Random) -> tuple[float, float]:
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(RESAMPLES))
    return round(means[int(0.025 * RESAMPLES)], 3), round(means[int(0.975 * RESAMPLES) - 1], 3)


def figure(ranks: Sequence[int | None]) -> Figure:
    rng = random.Random(SEED)
    rows = [per_case(rank) for rank in ranks]
    columns = [[row[i] for row in rows] for i in range(3)]
    mean = [round(sum(column) / len(column), 3) for column in columns]
    return Figure(
        n=len(rows),
        ndcg10=mean[0],
        ndcg10_ci=interval(columns[0], rng),
        mrr=mean[1],
        mrr_ci=interval(columns[1], rng),
        hit5=mean[2],
        hit5_ci=interval(columns[2], rng),
    )


def method(name: str, cases: Sequence[Case], rankings: Sequence[Sequence[int]]) -> Method:
    result = Method(
        name=name,
        ranks=[rank_of(r, case.target) for case, r in zip(cases, rankings, strict=True)],
    )
    for links in ("duplicate", "linked", "all"):
        ranks = [
            rank_of(ranking, case.target)
            for case, ranking in zip(cases, rankings, strict=True)
            if links in ("all", case.links)
        ]
        if ranks:
            result.by_links[links] = figure(ranks)
    return result


def difference(name: str, ours: Sequence[int | None], theirs: Sequence[int | None]) -> Difference:
    """Paired: resample cases, the same ones for both methods."""
    rng = random.Random(SEED)
    rows = [
        (per_case(a)[0] - per_case(b)[0], per_case(a)[1] - per_case(b)[1])
        for a, b in zip(ours, theirs, strict=True)
    ]
    ndcg, mrr = [row[0] for row in rows], [row[1] for row in rows]
    return Difference(
        method=name,
        baseline=BASELINE,
        n=len(rows),
        ndcg10=round(sum(ndcg) / len(ndcg), 3),
        ndcg10_ci=interval(ndcg, rng),
        mrr=round(sum(mrr) / len(mrr), 3),
        mrr_ci=interval(mrr, rng),
    )


# --- the plain BM25 baseline ----------------------------------------------------------


def words(text: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(text)]


def bm25_rankings(site: Site, cases: Sequence[Case], with_body: bool) -> list[list[int]]:
    """Textbook BM25 over title + body, over the questions created before each asked one."""
    return [[d for d, _ in scored] for scored in bm25_scored(site, cases, with_body, LIMIT)]


def bm25_scored(
    site: Site, cases: Sequence[Case], with_body: bool, depth: int
) -> list[list[tuple[int, float]]]:
    """The same BM25, each case's best `depth` questions with their scores (for fusion)."""
    k1, b = 1.2, 0.75
    ordered = sorted(site.questions.values(), key=lambda q: (q.created_at, q.id))
    docs = {q.id: Counter(words(f"{q.title} {q.text}")) for q in ordered}
    rankings: list[list[tuple[int, float]]] = []
    for case in cases:
        asked = site.questions[case.asked]
        pool = [q.id for q in ordered if (q.created_at, q.id) < (asked.created_at, asked.id)]
        if not pool:
            rankings.append([])
            continue
        lengths = {d: sum(docs[d].values()) for d in pool}
        average = sum(lengths.values()) / len(pool)
        query = set(words(f"{asked.title} {asked.text}" if with_body else asked.title))
        frequency = {t: sum(1 for d in pool if t in docs[d]) for t in query}
        scores: dict[int, float] = {}
        for d in pool:
            total = 0.0
            for term in query:
                tf = docs[d].get(term, 0)
                if not tf:
                    continue
                idf = math.log(1 + (len(pool) - frequency[term] + 0.5) / (frequency[term] + 0.5))
                total += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[d] / average))
            if total > 0:
                scores[d] = total
        best = sorted(scores, key=lambda d: (-scores[d], d))[:depth]
        rankings.append([(d, scores[d]) for d in best])
    return rankings


# --- the service, through the real event path -----------------------------------------


def question_created(site: Site, question: Question) -> QuestionCreated:
    qid = content_id(site.host, question.id)
    accepted = question.accepted_answer_id
    return QuestionCreated(
        content_id=qid,
        kind="question",
        author_id=user_id(site.host, question.owner),
        group_id=None,
        visibility="public",
        version=1,
        title=question.title or None,
        body=question.text,
        tags=list(question.tags),
        mentions=[],
        parent_id=None,
        thread_id=qid,
        created_at=question.created_at,
        updated_at=question.created_at,
        accepted_answer_id=content_id(site.host, accepted) if accepted else None,
    )


def encode(data: QuestionCreated, at: datetime) -> Message:
    envelope = wrap(data, source="/knowflow/bench/stackexchange")
    envelope = envelope.model_copy(update={"time": at})
    subject = subject_for(envelope.type, envelope.audience)
    return subject, envelope.model_dump_json().encode(), {"Nats-Msg-Id": str(envelope.id)}


class Publisher:
    """One bus connection: publish a batch, then wait until search has acked all of it."""

    def __init__(self, nats_url: str, semantic: bool) -> None:
        self.nats_url = nats_url
        self.semantic = semantic  # the search-embeddings consumer must settle too
        self.loop = asyncio.new_event_loop()
        self.bus: Bus = self.loop.run_until_complete(
            Bus.connect(nats_url, stream="KNOWFLOW", name="bench-similar")
        )

    def publish_and_settle(self, messages: Sequence[Message], timeout: float) -> None:
        self.loop.run_until_complete(self._publish_and_settle(messages, timeout))

    async def _publish_and_settle(self, messages: Sequence[Message], timeout: float) -> None:
        futures = [
            await self.bus.js.publish_async(subject, payload, headers=headers)
            for subject, payload, headers in messages
        ]
        await asyncio.gather(*futures)
        deadline = time.monotonic() + timeout
        consumers = ["search-content", *(["search-embeddings"] if self.semantic else [])]
        while time.monotonic() < deadline:
            busy = False
            for consumer in consumers:
                info = await self.bus.js.consumer_info("KNOWFLOW", consumer)
                busy = busy or bool(info.num_pending or info.num_ack_pending)
            if not busy:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{', '.join(consumers)} still busy after {timeout}s")

    def dead_letters(self) -> int:
        async def count() -> int:
            info = await self.bus.js.stream_info(self.bus.dead_letter_stream)
            return int(info.state.messages)

        return self.loop.run_until_complete(count())

    def close(self) -> None:
        self.loop.run_until_complete(self.bus.close())
        self.loop.close()


def run_engine(
    *,
    engine: str,
    site: Site,
    cases: Sequence[Case],
    args: argparse.Namespace,
    issuer: TokenIssuer,
    jwks_url: str,
    workdir: Path,
) -> tuple[list[Method], dict[str, float]]:
    """Replay the site's questions in time order and ask each case's drafts just in time."""
    workdir.mkdir(parents=True)
    nats_port, http_port = free_port(), free_port()
    nats = start_nats_server(workdir / "nats", port=nats_port)
    nats_url = f"nats://127.0.0.1:{nats_port}"
    prefix = f"bench-similar-{secrets.token_hex(4)}"
    opensearch = engine == "opensearch"
    env = {
        "KNOWFLOW_DATABASE_URL": f"sqlite:///{workdir / 'search.db'}",
        "KNOWFLOW_NATS_URL": nats_url,
        "KNOWFLOW_SEARCH_URL": args.opensearch_url if opensearch else "",
        "KNOWFLOW_SEARCH_INDEX_PREFIX": prefix,
        "KNOWFLOW_JWKS_URL": jwks_url,
        "KNOWFLOW_LOG_LEVEL": "WARNING",
        # "on": the default model (it must have been fetched: `make setup`); "off": keywords.
        "KNOWFLOW_SEMANTIC_MODEL": DEFAULT_MODEL if args.semantic == "on" else "off",
    }
    base = f"http://127.0.0.1:{http_port}"
    token = issuer.issue(user_id=new_id(), handle="bench")
    ordered = sorted(site.questions.values(), key=lambda q: (q.created_at, q.id))
    by_content = {content_id(site.host, q.id): q.id for q in ordered}
    rankings: dict[str, list[list[int]]] = {draft: [] for draft in DRAFTS}
    timings: list[float] = []
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
            publisher = Publisher(nats_url, semantic=args.semantic == "on")
            published = 0
            try:
                with httpx.Client(
                    base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
                ) as client:
                    for case in cases:
                        asked = site.questions[case.asked]
                        batch = []
                        while published < len(ordered) and (
                            ordered[published].created_at,
                            ordered[published].id,
                        ) < (asked.created_at, asked.id):
                            q = ordered[published]
                            batch.append(encode(question_created(site, q), q.created_at))
                            published += 1
                        if batch:
                            publisher.publish_and_settle(batch, args.timeout)
                            if opensearch:
                                httpx.post(f"{args.opensearch_url}/{prefix}-content/_refresh")
                        for draft in DRAFTS:
                            began = time.perf_counter()
                            response = client.post(
                                "/questions/similar", json=draft_of(asked, draft)
                            )
                            timings.append((time.perf_counter() - began) * 1000)
                            if response.status_code == 400:  # a title without words
                                rankings[draft].append([])
                                continue
                            response.raise_for_status()
                            rankings[draft].append(
                                [
                                    by_content[UUID(item["question_id"])]
                                    for item in response.json()["items"]
                                ]
                            )
                parked = publisher.dead_letters()
            finally:
                publisher.close()
    finally:
        nats.terminate()
        nats.wait(timeout=10)
        if opensearch:
            drop_prefix(args.opensearch_url, prefix)
    timings.sort()
    stats = {
        "seconds": round(time.monotonic() - started, 1),
        "questions_published": published,
        "queries": len(timings),
        "query_ms_p50": round(timings[len(timings) // 2], 1) if timings else 0.0,
        "query_ms_p95": round(timings[int(len(timings) * 0.95)], 1) if timings else 0.0,
        "dead_letters": parked,
    }
    mode = "hybrid" if args.semantic == "on" else "keyword only"
    methods = [
        method(
            f"Knowflow /questions/similar ({engine}, {mode}), draft: {draft}",
            cases,
            rankings[draft],
        )
        for draft in DRAFTS
    ]
    return methods, stats


# --- the run and its report -----------------------------------------------------------


def run_site(
    name: str, *, args: argparse.Namespace, issuer: TokenIssuer, jwks_url: str, tmp: Path
) -> SiteResult:
    folder = args.data / name
    site = load_site(folder)
    cases = cases_of(site, folder)
    print(f"[{site.host}] {len(cases)} cases: {Counter(c.links for c in cases)}", flush=True)
    result = SiteResult(
        site=name,
        host=site.host,
        questions=len(site.questions),
        cases=dict(Counter(case.links for case in cases)),
        baseline=[
            method("plain BM25 (title)", cases, bm25_rankings(site, cases, with_body=False)),
            method(BASELINE, cases, bm25_rankings(site, cases, with_body=True)),
        ],
        attribution=site.attribution,
    )
    for engine in args.engines:
        methods, stats = run_engine(
            engine=engine,
            site=site,
            cases=cases,
            args=args,
            issuer=issuer,
            jwks_url=jwks_url,
            workdir=tmp / f"{name}-{engine}",
        )
        result.engines[engine] = methods
        result.timings[engine] = stats
        print(f"[{site.host}] {engine}: {stats}", flush=True)
    return result


def differences(sites: Sequence[SiteResult]) -> list[tuple[str, Difference]]:
    """Each Knowflow draft against the baseline, per site and pooled over the sites."""
    found = []
    engines = sorted({engine for site in sites for engine in site.engines})
    for engine in engines:
        for position in range(len(DRAFTS)):
            pooled_ours: list[int | None] = []
            pooled_theirs: list[int | None] = []
            for site in sites:
                if engine not in site.engines:
                    continue
                ours = site.engines[engine][position]
                (theirs,) = [m for m in site.baseline if m.name == BASELINE]
                found.append((site.host, difference(ours.name, ours.ranks, theirs.ranks)))
                pooled_ours += ours.ranks
                pooled_theirs += theirs.ranks
            if len(sites) > 1 and pooled_ours:
                found.append(("pooled", difference(ours.name, pooled_ours, pooled_theirs)))
    return found


def signed(value: float, ci: tuple[float, float]) -> str:
    return f"{value:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"


def cell(value: float, ci: tuple[float, float]) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def table(result: SiteResult, links: str) -> list[str]:
    lines = [
        "| method | n | nDCG@10 [95 % CI] | MRR [95 % CI] | hit@5 [95 % CI] |",
        "|---|---|---|---|---|",
    ]
    methods = [m for engine in result.engines.values() for m in engine] + result.baseline
    for m in methods:
        f = m.by_links.get(links)
        if f is None:
            continue
        lines.append(
            f"| {m.name} | {f.n} | {cell(f.ndcg10, f.ndcg10_ci)} | {cell(f.mrr, f.mrr_ci)} "
            f"| {cell(f.hit5, f.hit5_ci)} |"
        )
    return lines


def write_results(sites: list[SiteResult], meta: dict[str, Any], name: str) -> str:
    RESULTS.mkdir(parents=True, exist_ok=True)
    diffs = differences(sites)
    payload = {
        **meta,
        "sites": [asdict(site) for site in sites],
        "differences": [{"over": over, **asdict(diff)} for over, diff in diffs],
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    lines = [
        "# Similar questions against the sites' own duplicate and related links",
        "",
        f"Date: {meta['date']}. Machine: {meta['machine']}. Engines: "
        f"{', '.join(meta['config']['engines'])}. See `bench/similar_eval.py` for the protocol: "
        "the later question of each PostLinks pair is asked (`POST /questions/similar`, "
        "limit 20) over exactly the questions created before it, replayed through JetStream; "
        "the earlier one is the target. nDCG@10, MRR and hit@5 of the target with "
        f"percentile-bootstrap 95 % intervals ({RESAMPLES} resamples, seed {SEED}). "
        "Baseline: textbook BM25 over title + body as one field (no stemming, stop words "
        "or field weights). No parameter was fitted on either site.",
        "",
    ]
    for site in sites:
        lines += [f"## {site.host}", "", f"{site.questions} questions; cases: {site.cases}.", ""]
        for links, label in (
            ("duplicate", "Duplicates (LinkTypeId 3)"),
            ("linked", "Linked questions (LinkTypeId 1)"),
            ("all", "All pairs"),
        ):
            lines += [f"### {label}", "", *table(site, links), ""]
        for engine, stats in site.timings.items():
            lines.append(
                f"- {engine}: {stats['questions_published']} questions replayed, "
                f"{stats['queries']} queries (p50 {stats['query_ms_p50']} ms, p95 "
                f"{stats['query_ms_p95']} ms), {stats['dead_letters']} dead letters, "
                f"{stats['seconds']} s."
            )
        lines += ["", site.attribution, ""]
    lines += [
        f"## Against {BASELINE}, all pairs, paired bootstrap",
        "",
        "| over | method | n | Δ nDCG@10 [95 % CI] | Δ MRR [95 % CI] |",
        "|---|---|---|---|---|",
        *(
            f"| {over} | {d.method} | {d.n} | {signed(d.ndcg10, d.ndcg10_ci)} "
            f"| {signed(d.mrr, d.mrr_ci)} |"
            for over, d in diffs
        ),
        "",
    ]
    text = "\n".join(lines)
    (RESULTS / f"{name}.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", default="cardano,quantumcomputing")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--engine", default="embedded,opensearch", help="embedded, opensearch or both (a,b)"
    )
    parser.add_argument(
        "--opensearch-url",
        default=os.environ.get("KNOWFLOW_TEST_OPENSEARCH_URL", "http://127.0.0.1:9200"),
    )
    parser.add_argument("--output", default="similar", help="bench/results/<output>.md and .json")
    parser.add_argument(
        "--semantic", choices=["on", "off"], default="on", help="hybrid (on) or keyword-only"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="bound per indexing step")
    args = parser.parse_args()
    args.engines = [name.strip() for name in args.engine.split(",") if name.strip()]
    issuer = TokenIssuer(
        Ed25519PrivateKey.generate(),
        issuer="knowflow-identity",
        audience="knowflow",
        ttl_seconds=3600,
    )
    started = time.monotonic()
    sites = []
    with (
        tempfile.TemporaryDirectory(prefix="knowflow-similar-") as tmp,
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
