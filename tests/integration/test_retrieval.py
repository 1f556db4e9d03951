"""`loadgen retrieval` end to end on a slice of the labeled set: a private worker on the
real stack, the turns published and acknowledged through the SDK, every variant
searched through it, and the report checked."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from loadgen.cli import main
from loadgen.retrieval.dataset import load, sample
from loadgen.retrieval.score import metric_names
from loadgen.retrieval.variants import all_variants
from processors.core.search import DEFAULT_ALPHA, DEFAULT_FUSION
from streams.settings import Settings
from streams.stack.launcher import settings_env

QUESTIONS, TURNS = 20, 60


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) >= 5}


def test_retrieval_benchmark_on_a_slice(
    stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in settings_env(stack).items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "retrieval.json"
    argv = ["retrieval", "--questions", str(QUESTIONS), "--turns", str(TURNS)]
    assert main([*argv, "--workdir", str(tmp_path / "run"), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())

    assert (doc["set"]["questions"], doc["set"]["turns"]) == (QUESTIONS, TURNS)
    variants = {v["name"]: v for v in doc["variants"]}
    assert list(variants) == [v.name for v in all_variants()]
    for v in variants.values():
        m = v["metrics"]
        assert set(m) == set(metric_names())
        assert all(0.0 <= x <= 1.0 for x in m.values()), v
        assert m["hit@1"] <= m["hit@5"] <= m["hit@10"], v
        assert m["recall@10"] <= m["hit@10"], v
    # the defaults are passed through: the default variant is its named twin
    twin = f"{DEFAULT_FUSION} alpha {DEFAULT_ALPHA:g}"
    assert variants["default"]["metrics"] == variants[twin]["metrics"]

    # keyword search finds a question sharing a word with exactly one turn, that turn
    # being its evidence
    data = sample(load(), questions=QUESTIONS, turns=TURNS)
    seen = Counter(w for t in data.turns for w in words(t.text))
    texts = {t.id: words(t.text) for t in data.turns}
    unique = [
        q.id
        for q in data.questions
        if any(seen[w] == 1 and w in texts[e] for e in q.evidence for w in words(q.question))
    ]
    assert unique, "the slice has no question that keyword search must find"
    missed = set(variants["bm25 (alpha 0)"]["misses"])
    assert not missed & set(unique), (unique, missed)
