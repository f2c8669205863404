"""Tokenizer for the local NLU model.

Splits text into word tokens and single punctuation tokens and keeps the
character offsets of every token, so that entity spans found on tokens can be
mapped back to exact ``start``/``end`` offsets in the original text.

A word keeps inner dots and hyphens (``12.04``, ``last.fm``, ``s-bahn``,
``MFC-5890CN``) because entity values in the training corpora are written that
way; every other non-space, non-word character is its own token, so
``Gmail's`` becomes ``Gmail`` ``'`` ``s`` and an entity that ends before the
apostrophe still lines up with a token boundary.
"""

import re
from typing import Iterable, List, NamedTuple, Optional

_TOKEN_RE = re.compile(r"\w+(?:[.\-]\w+)*|[^\w\s]")


class Token(NamedTuple):
    """One token: its text and its ``[start, end)`` character span."""

    text: str
    start: int
    end: int


def tokenize(text: str, split_points: Optional[Iterable[int]] = None) -> List[Token]:
    """Split ``text`` into tokens with character offsets.

    ``split_points`` are extra offsets at which a token must be cut.  Training
    passes the annotated entity boundaries here, so an annotation that ends in
    the middle of a word (``[u](Line)6``) still gets its own tokens.
    """
    tokens = [Token(m.group(), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]
    if not split_points:
        return tokens
    cuts = sorted(set(split_points))
    if not cuts:
        return tokens
    out: List[Token] = []
    for tok in tokens:
        inner = [c for c in cuts if tok.start < c < tok.end]
        if not inner:
            out.append(tok)
            continue
        bounds = [tok.start] + inner + [tok.end]
        for a, b in zip(bounds, bounds[1:]):
            out.append(Token(text[a:b], a, b))
    return out
