"""Hybrid ranking: an engine's keyword ranking and the dense ranking fused into one list.

Each retrieval hands over its best `CANDIDATES` with its own scores, best first (keyword:
BM25-like, unbounded; dense: cosine similarity in [-1, 1]). Scores are normalised per query
and list, then combined convexly: `(1 - weight) * keyword + weight * dense`, a document
missing from a list counting as that list's worst. Chosen by `bench/semantic_eval.py`
over weighted reciprocal-rank fusion and z-score normalisation (see
bench/results/semantic.md).
"""

import math
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

# Fitted by bench/semantic_eval.py on FITTED_ON (best nDCG@10, mean of the "title" and
# "title+body+tags" drafts, all-minilm-l6-v2-q, textbook BM25 as the keyword list) and
# reported held out on the other site; see bench/results/semantic.md.
FITTED_ON = "quantumcomputing.stackexchange.com"
DENSE_WEIGHT = 0.5
# How many candidates each retrieval should hand to `fuse`: the weight was fitted with
# lists this deep (min-max normalisation depends on where a list is cut).
CANDIDATES = 50
RRF_K = 60  # the usual constant of reciprocal-rank fusion (Cormack et al., 2009)

Normalise = Callable[[Sequence[float]], tuple[list[float], float]]


def normalise_minmax(scores: Sequence[float]) -> tuple[list[float], float]:
    """Scores to [0, 1], best 1, and 0 for a missing document; one score or all equal → 1."""
    if not scores:
        return [], 0.0
    low, high = min(scores), max(scores)
    if high - low <= 1e-12:
        return [1.0] * len(scores), 0.0
    return [(s - low) / (high - low) for s in scores], 0.0


def normalise_zscore(scores: Sequence[float]) -> tuple[list[float], float]:
    """Standard scores, a missing document counting as the worst; one score or equal → 0."""
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


def _ranked(fused: dict[K, float], found: dict[K, int], limit: int) -> list[tuple[K, float]]:
    # Stable sort: equal scores go to the document more lists found, then to first seen
    # (the heavier list's order, then the other's), so ties never depend on hashing.
    order = sorted(fused, key=lambda key: (-fused[key], -found[key]))
    return [(key, fused[key]) for key in order[: max(limit, 0)]]


def fuse(
    keyword: Sequence[tuple[K, float]],
    dense: Sequence[tuple[K, float]],
    *,
    limit: int,
    weight: float = DENSE_WEIGHT,
    normalise: Normalise = normalise_minmax,
) -> list[tuple[K, float]]:
    """The best `limit` of both lists by (1 - weight) * keyword + weight * dense, normalised."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be within [0, 1], not {weight}")
    lists = _heavier_first(_first_of_each(keyword), _first_of_each(dense), weight)
    fused: dict[K, float] = {}
    found: dict[K, int] = {}
    for ranking, _ in lists:
        for key, _score in ranking:
            fused.setdefault(key, 0.0)
            found[key] = found.get(key, 0) + 1
    for ranking, share in lists:
        values, floor = normalise([score for _, score in ranking])
        present = dict(zip((key for key, _ in ranking), values, strict=True))
        for key in fused:
            fused[key] += share * present.get(key, floor)
    return _ranked(fused, found, limit)


def fuse_rrf(
    keyword: Sequence[tuple[K, float]],
    dense: Sequence[tuple[K, float]],
    *,
    limit: int,
    weight: float = DENSE_WEIGHT,
    k: int = RRF_K,
) -> list[tuple[K, float]]:
    """Weighted reciprocal-rank fusion: Σ share / (k + rank); weight 0.5 is plain RRF."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be within [0, 1], not {weight}")
    fused: dict[K, float] = {}
    found: dict[K, int] = {}
    for ranking, share in _heavier_first(keyword, dense, weight):
        for rank, (key, _score) in enumerate(_first_of_each(ranking), start=1):
            fused[key] = fused.get(key, 0.0) + share / (k + rank)
            found[key] = found.get(key, 0) + 1
    return _ranked(fused, found, limit)
