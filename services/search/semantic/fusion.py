"""Hybrid ranking: an engine's keyword ranking and the dense ranking fused into one list.

Each retrieval hands over its best `CANDIDATES` with its own scores, best first (keyword:
BM25-like, unbounded; dense: cosine similarity in [-1, 1]). Each list's scores are turned
into standard scores (z-scores) for this query, a document missing from a list counting
as that list's worst, and combined convexly: `(1 - weight) * keyword + weight * dense`.
The fused score orders documents and means nothing on its own (it is not bounded).
Chosen by `bench/semantic_eval.py` over min-max normalisation (as good within 0.003) and
weighted reciprocal-rank fusion, which at its usual equal weights ranked below the dense
model alone in three of four site-and-draft pairs, as on CQADupStack
(bench/results/semantic.md).
"""

import math
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

# Fitted by bench/semantic_eval.py on FITTED_ON: the family (z-score over min-max and
# weighted RRF) and the weight with the best nDCG@10, mean of the "title" and
# "title+body+tags" drafts, with all-minilm-l6-v2-q and textbook BM25 as the keyword list;
# held out on cardano.stackexchange.com (fitted there, z-score and 0.7 win; 0.6 is within
# 0.001). Refit when the model or the keyword scoring changes.
FITTED_ON = "quantumcomputing.stackexchange.com"
DENSE_WEIGHT = 0.6
# How many candidates each retrieval should hand to `fuse`: the weight was fitted with lists
# this deep (checked once off the bench: cut at 20, nDCG@10 fell by 0.016 on cardano and
# 0.006 on quantumcomputing; deeper than 50 was not tried).
CANDIDATES = 50

Normalise = Callable[[Sequence[float]], tuple[list[float], float]]


def normalise_minmax(scores: Sequence[float]) -> tuple[list[float], float]:
    """Scores to [0, 1], best 1, a missing document 0; one score or all equal: 1 (bounded)."""
    if not scores:
        return [], 0.0
    low, high = min(scores), max(scores)
    if high - low <= 1e-12:
        return [1.0] * len(scores), 0.0
    return [(s - low) / (high - low) for s in scores], 0.0


def normalise_zscore(scores: Sequence[float]) -> tuple[list[float], float]:
    """Standard scores, a missing document as the worst; one score or all equal: 0, missing -1."""
    if not scores:
        return [], 0.0
    mean = sum(scores) / len(scores)
    spread = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
    if spread <= 1e-12:
        return [0.0] * len(scores), -1.0
    z = [(s - mean) / spread for s in scores]
    return z, min(z)


def _first_of_each(ranking: Sequence[tuple[K, float]]) -> list[tuple[K, float]]:
    seen: set[K] = set()
    kept = []
    for key, score in ranking:
        if key not in seen:
            seen.add(key)
            kept.append((key, score))
    return kept


def _heavier_first(
    keyword: Sequence[tuple[K, float]], dense: Sequence[tuple[K, float]], weight: float
) -> list[tuple[Sequence[tuple[K, float]], float]]:
    """Both lists with their shares, the one that weighs more first (keyword on a draw)."""
    lists = [(keyword, 1.0 - weight), (dense, weight)]
    return lists[::-1] if weight > 0.5 else lists


def fuse(
    keyword: Sequence[tuple[K, float]],
    dense: Sequence[tuple[K, float]],
    *,
    limit: int,
    weight: float = DENSE_WEIGHT,
    normalise: Normalise = normalise_zscore,
) -> list[tuple[K, float]]:
    """The best `limit` of both lists by (1 - weight) * keyword + weight * dense, normalised."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be within [0, 1], not {weight}")
    lists = _heavier_first(_first_of_each(keyword), _first_of_each(dense), weight)
    fused: dict[K, float] = {}
    found: Counter[K] = Counter()
    for ranking, _ in lists:
        for key, _score in ranking:
            fused[key] = 0.0
            found[key] += 1
    for ranking, share in lists:
        values, floor = normalise([score for _, score in ranking])
        present = dict(zip((key for key, _ in ranking), values, strict=True))
        for key in fused:
            fused[key] += share * present.get(key, floor)
    # Stable sort: equal scores go to the document more lists found, then to first seen
    # (the heavier list's order, then the other's), so ties never depend on hashing.
    order = sorted(fused, key=lambda key: (-fused[key], -found[key]))
    return [(key, fused[key]) for key in order[: max(limit, 0)]]
