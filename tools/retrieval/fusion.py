"""Reciprocal-rank fusion: score(d) = sum over backends of weight / (rrf_k + rank(d)), rank from 1."""

from __future__ import annotations

from collections.abc import Sequence


def rrf(
    rankings: Sequence[Sequence[int]],
    weights: Sequence[float],
    k: int,
    rrf_k: int = 60,
) -> list[tuple[int, float]]:
    """Fuse ranked lists of rows; the top `k` (row, fused score), ties broken by the first list."""
    if len(rankings) != len(weights):
        raise ValueError("one weight per ranking")
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if weight == 0:
            continue
        for rank, row in enumerate(ranking, start=1):
            scores[row] = scores.get(row, 0.0) + weight / (rrf_k + rank)
    order = sorted(scores.items(), key=lambda item: -item[1])  # stable: insertion order breaks ties
    return order[:k]


__all__ = ["rrf"]
