"""recall@k and hit@k of ranked search results against evidence turns. Pure.

For one question, recall@k is the share of its evidence turns among the first k
results, hit@k is 1 if any of them is; a variant's figure is the mean over its
questions (so both lie in [0, 1], and neither falls as k grows).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from loadgen.retrieval.dataset import Question

KS = (1, 5, 10)


def recall_at(ranked: Sequence[str], evidence: Sequence[str], k: int) -> float:
    if not evidence:
        raise ValueError("a question without evidence cannot be scored")
    top = set(ranked[:k])
    return sum(1 for e in set(evidence) if e in top) / len(set(evidence))


def hit_at(ranked: Sequence[str], evidence: Sequence[str], k: int) -> float:
    top = set(ranked[:k])
    return 1.0 if any(e in top for e in evidence) else 0.0


@dataclass(frozen=True)
class Scores:
    metrics: dict[str, float]  # "hit@1", ..., "recall@10"
    by_kind: dict[str, float]  # hit@10 by question kind
    misses: tuple[str, ...]  # the questions with no evidence in the top 10


def metric_names(ks: Sequence[int] = KS) -> list[str]:
    return [f"hit@{k}" for k in ks] + [f"recall@{k}" for k in ks]


def score(
    questions: Sequence[Question],
    rankings: Mapping[str, Sequence[str]],
    ks: Sequence[int] = KS,
) -> Scores:
    """The mean of each metric over ``questions``; ``rankings`` maps a question's id to
    the memory ids found, best first (a question without a ranking found nothing)."""
    if not questions:
        raise ValueError("no questions to score")
    sums: dict[str, float] = dict.fromkeys(metric_names(ks), 0.0)
    kind_hits: dict[str, list[float]] = defaultdict(list)
    top = max(ks)
    misses: list[str] = []
    for q in questions:
        ranked = list(rankings.get(q.id, ()))
        for k in ks:
            sums[f"hit@{k}"] += hit_at(ranked, q.evidence, k)
            sums[f"recall@{k}"] += recall_at(ranked, q.evidence, k)
        hit = hit_at(ranked, q.evidence, top)
        kind_hits[q.kind].append(hit)
        if not hit:
            misses.append(q.id)
    n = len(questions)
    return Scores(
        {name: total / n for name, total in sums.items()},
        {kind: sum(v) / len(v) for kind, v in sorted(kind_hits.items())},
        tuple(misses),
    )
