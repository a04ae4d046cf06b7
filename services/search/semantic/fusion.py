"""Placeholder fusion (min-max convex combination); replaced by the measured one."""

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
DENSE_WEIGHT = 0.5


def _normalised(ranked: Sequence[tuple[K, float]]) -> dict[K, float]:
    if not ranked:
        return {}
    scores = [score for _, score in ranked]
    low, high = min(scores), max(scores)
    span = high - low
    return {key: (score - low) / span if span > 0 else 1.0 for key, score in ranked}


def fuse(
    keyword: Sequence[tuple[K, float]],
    dense: Sequence[tuple[K, float]],
    *,
    limit: int,
    weight: float = DENSE_WEIGHT,
) -> list[tuple[K, float]]:
    keyword_scores, dense_scores = _normalised(keyword), _normalised(dense)
    order = {key: position for position, key in enumerate([*keyword_scores, *dense_scores])}
    fused = {
        key: (1 - weight) * keyword_scores.get(key, 0.0) + weight * dense_scores.get(key, 0.0)
        for key in order
    }
    return sorted(fused.items(), key=lambda pair: (-pair[1], order[pair[0]]))[:limit]
