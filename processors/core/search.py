"""Search options: the fusion methods and their defaults, checked. Pure.

``alpha`` weighs the two halves of a hybrid search: 0 is keyword (BM25) alone, 1 the
vector alone. ``fusion`` is how Weaviate joins them: ``relative_score`` scales each
list's scores to [0, 1] before weighing them, ``ranked`` weighs 1/(60 + rank).
The defaults are the measured best of ``loadgen retrieval`` (README, search).

:func:`keyword_query` is the text the keyword half searches for: a question without
its asking words (the vector half embeds the question as it was asked).
"""

from __future__ import annotations

import re
from typing import Literal, cast, get_args

Fusion = Literal["relative_score", "ranked"]
FUSIONS: tuple[str, ...] = get_args(Fusion)
DEFAULT_ALPHA = 0.75
DEFAULT_FUSION: Fusion = "ranked"


def check_options(alpha: float, fusion: str) -> Fusion:
    """``fusion`` as a :data:`Fusion`; ``ValueError`` naming what is wrong otherwise."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
    return cast(Fusion, fusion)


# Words that ask rather than say what is asked about: interrogatives, auxiliaries,
# pronouns of the asker, and "now"-words (the current fact is told in other words).
# BM25 over conversation turns scores them like any rare word: "does", "now" or "her"
# match turns that have nothing to do with the question. Weaviate's English stopword
# preset keeps all of them.
_ASKING = frozenset(
    {"what", "whats", "which", "who", "whom", "whose", "when", "where", "why", "how"}
)
_AUXILIARY = frozenset(
    {"do", "does", "did", "doing", "done", "is", "are", "was", "were", "be", "been", "being"}
    | {"am", "has", "have", "had", "having", "can", "could", "would", "should", "will"}
    | {"shall", "may", "might", "must"}
)
_PRONOUNS = frozenset(
    {"i", "me", "my", "mine", "you", "your", "yours", "he", "him", "his", "she", "her", "hers"}
    | {"they", "them", "their", "theirs", "we", "us", "our", "it", "its", "s"}
)
_GLUE = frozenset(
    {"the", "a", "an", "of", "to", "in", "on", "at", "for", "from", "by", "with", "about", "and"}
    | {"or", "this", "that", "those", "there", "here", "any", "some", "kind", "sort", "one"}
    | {"ones", "name", "named", "called"}
)
_NOW = frozenset({"now", "currently", "still", "nowadays", "these", "days", "today"})
QUESTION_WORDS = _ASKING | _AUXILIARY | _PRONOUNS | _GLUE | _NOW
_WORD = re.compile(r"[^\W_]+")


def keyword_query(query: str) -> str:
    """``query`` less its :data:`QUESTION_WORDS` (the words kept in their order); the
    query itself when nothing would be left ("what is it?")."""
    kept = [w for w in _WORD.findall(query) if w.lower() not in QUESTION_WORDS]
    return " ".join(kept) if kept else query
