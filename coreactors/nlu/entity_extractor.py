"""Entity extractor of the local NLU model: a linear-chain CRF over tokens.

Each token gets a tag in the BILOU scheme (``B-x`` begin, ``I-x`` inside,
``L-x`` last, ``U-x`` unit-length entity, ``O`` outside).  Tag scores come from
sparse binary token features (the word, its affixes and shape, neighbouring
words, and whether the token lies inside a regex-feature match or a
lookup-table element), plus tag-to-tag transition scores.  Transitions that
cannot form well-shaped entities (``O`` followed by ``I-x``, ``B-x`` followed
by ``B-y``, ...) are forbidden outright, so decoding always yields whole
entities.

Training maximises the conditional log-likelihood with an L2 penalty using
mini-batch Adam; forward-backward runs on a whole batch at once in scaled
probability space (one small matrix product per time step).  Decoding is
Viterbi; an entity's confidence is the smallest marginal probability of its
tokens' tags, i.e. how sure the model is of its weakest token.
"""

import re
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from coreactors.nlu.intent_classifier import Adam, PlateauSchedule
from coreactors.nlu.tokenizer import Token, tokenize

OUTSIDE = "O"
# Stands in for -inf in log space: finite, so sums never turn into NaN.
_NEG = -1e30

_SHAPE_RE = [(re.compile(r"[A-Z]"), "X"), (re.compile(r"[a-z]"), "x"), (re.compile(r"\d"), "d")]
_LETTER_RE = re.compile(r"[^\W\d_]")

# Feature value of "this token is inside a regex / lookup match".  The
# patterns and tables are curated by the bot author, and with few examples an
# L2-regularised model spreads its weight evenly over every feature that
# explains them (word, affixes, match); a larger value makes the match feature
# cheaper to rely on, so it carries over to values never seen in training.
_MATCH_VALUE = 3.0

# Largest total size (cells) of the per-batch design matrices kept in memory
# for the whole of training (160 MB of float64).
_DESIGN_CACHE_LIMIT = 20_000_000


def feature_value(feature: str) -> float:
    return _MATCH_VALUE if feature.startswith("m=") else 1.0


# ---------------------------------------------------------------------------
# Span matchers: regex features and lookup tables
# ---------------------------------------------------------------------------


class SpanMatcher:
    """Marks tokens that fall inside regex-feature matches or lookup elements.

    Lookup elements are matched on token sequences (lower-cased) rather than
    compiled into one giant regex, so a table with thousands of entries costs
    one dictionary probe per token n-gram at parse time.
    """

    def __init__(self, regex_features: Sequence[Dict[str, str]],
                 lookup_tables: Sequence[Dict[str, Any]]) -> None:
        self.regexes: List[Tuple[str, "re.Pattern[str]"]] = []
        for feat in regex_features:
            try:
                self.regexes.append((str(feat["name"]), re.compile(str(feat["pattern"]))))
            except re.error as exc:
                raise ValueError("invalid regex feature {!r}: {}".format(feat.get("pattern"), exc)) from exc
        # token tuple -> names of the tables it is an element of
        self.lookup: Dict[Tuple[str, ...], List[str]] = {}
        self.max_len = 0
        for table in lookup_tables:
            name = str(table["name"])
            for element in table.get("elements", []):
                key = tuple(t.text.lower() for t in tokenize(str(element)))
                if not key:
                    continue
                names = self.lookup.setdefault(key, [])
                if name not in names:
                    names.append(name)
                self.max_len = max(self.max_len, len(key))

    @property
    def empty(self) -> bool:
        return not self.regexes and not self.lookup

    def token_marks(self, text: str, tokens: Sequence[Token]) -> List[List[Tuple[str, str]]]:
        """Per token, ``(name, position)`` of each match covering it.

        Names are ``re:<regex name>`` or ``lk:<table name>``; the position of
        the token in the matched span is ``B``, ``I``, ``L`` or ``U`` (the
        same scheme as the tags, so a two-word lookup element lines up with
        a two-token entity).
        """
        marks: List[List[Tuple[str, str]]] = [[] for _ in tokens]
        if not tokens:
            return marks

        def mark_span(first: int, last: int, name: str) -> None:
            for j in range(first, last + 1):
                if first == last:
                    pos = "U"
                else:
                    pos = "B" if j == first else ("L" if j == last else "I")
                if (name, pos) not in marks[j]:
                    marks[j].append((name, pos))

        for name, pattern in self.regexes:
            for m in pattern.finditer(text):
                inside = [i for i, tok in enumerate(tokens) if tok.start >= m.start() and tok.end <= m.end()]
                if inside:
                    mark_span(inside[0], inside[-1], "re:" + name)
        if self.lookup:
            lowered = [t.text.lower() for t in tokens]
            n = len(tokens)
            for i in range(n):
                for length in range(1, min(self.max_len, n - i) + 1):
                    names = self.lookup.get(tuple(lowered[i:i + length]))
                    if names is not None:
                        for name in names:
                            mark_span(i, i + length - 1, "lk:" + name)
        return marks


# ---------------------------------------------------------------------------
# Token features
# ---------------------------------------------------------------------------


def _shape(word: str, fold_case: bool = False) -> str:
    s = word
    if fold_case:
        # Letters of either case (and non-ASCII ones) become "a": model
        # numbers "z600", "C4140" and "l210" all read "ad".
        s = _LETTER_RE.sub("a", s)
    for pattern, repl in _SHAPE_RE:
        s = pattern.sub(repl, s)
    # Runs collapse so that "Garching" and "Odeonsplatz" share the shape "Xx".
    out = []
    for ch in s:
        if not out or out[-1] != ch:
            out.append(ch)
    return "".join(out)[:8]


def token_features(tokens: Sequence[Token], marks: Sequence[Sequence[Tuple[str, str]]]) -> List[List[str]]:
    """Feature strings of each token, looking at a window of two tokens each side."""
    n = len(tokens)
    lowers = [t.text.lower() for t in tokens]
    shapes = [_shape(t.text) for t in tokens]
    folded = [_shape(t.text, fold_case=True) for t in tokens]
    feats: List[List[str]] = []
    for i, tok in enumerate(tokens):
        w = tok.text
        low = lowers[i]
        f = ["b", "w=" + low, "sh=" + shapes[i], "sf=" + folded[i],
             "s2=" + low[-2:], "s3=" + low[-3:], "p2=" + low[:2], "p3=" + low[:3]]
        if w[:1].isupper():
            # Capitals after the first word are a much stronger name signal
            # than sentence-initial ones.
            f.append("cap" if i == 0 else "cap-mid")
        if any(ch.isupper() for ch in w[1:]) and any(ch.islower() for ch in w):
            f.append("camel")
        if w.isupper() and len(w) > 1:
            f.append("up")
        if w.isdigit():
            f.append("dg")
        elif any(ch.isdigit() for ch in w):
            f.append("hd")
        if not any(ch.isalnum() for ch in w):
            f.append("pu")
        if len(w) <= 2:
            f.append("short")
        if i == 0:
            f.append("BOS")
        if i == n - 1:
            f.append("EOS")
        for off in (-2, -1, 1, 2):
            j = i + off
            if 0 <= j < n:
                f.append("w%+d=%s" % (off, lowers[j]))
                if off in (-1, 1):
                    f.append("sh%+d=%s" % (off, shapes[j]))
                    f.append("sf%+d=%s" % (off, folded[j]))
                    for name, _ in marks[j]:
                        f.append("m%+d=%s" % (off, name))
        if i > 0:
            f.append("w-1|w=%s|%s" % (lowers[i - 1], low))
        if i + 1 < n:
            f.append("w|w+1=%s|%s" % (low, lowers[i + 1]))
        for name, pos in marks[i]:
            f.append("m=" + name)
            f.append("m=" + name + ":" + pos)
        # A token inside two matches of one table would repeat a feature;
        # each feature counts once.
        feats.append(list(dict.fromkeys(f)))
    return feats


# ---------------------------------------------------------------------------
# Tag scheme
# ---------------------------------------------------------------------------


def make_tags(entity_types: Sequence[str]) -> List[str]:
    tags = [OUTSIDE]
    for t in entity_types:
        tags.extend(["B-" + t, "I-" + t, "L-" + t, "U-" + t])
    return tags


def _allowed(tags: Sequence[str]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BILOU constraints: allowed[i, j] for i -> j, plus allowed first and last tags."""
    k = len(tags)
    opens = [t == OUTSIDE or t[0] in "LU" for t in tags]  # after these a new entity may start
    allowed = np.zeros((k, k), dtype=bool)
    for i, a in enumerate(tags):
        for j, b in enumerate(tags):
            if opens[i]:
                allowed[i, j] = b == OUTSIDE or b[0] in "BU"
            else:
                allowed[i, j] = b[0] in "IL" and b[2:] == a[2:]
    first = np.array([t == OUTSIDE or t[0] in "BU" for t in tags])
    last = np.array(opens)
    return allowed, first, last


def spans_to_tags(tokens: Sequence[Token], entities: Sequence[Dict[str, Any]]) -> List[str]:
    """BILOU tags of ``tokens`` for annotated ``entities`` (character spans)."""
    tags = [OUTSIDE] * len(tokens)
    for ent in sorted(entities, key=lambda e: (e["start"], e["end"])):
        inside = [i for i, t in enumerate(tokens) if t.start >= ent["start"] and t.end <= ent["end"]]
        if not inside or any(tags[i] != OUTSIDE for i in inside):
            # Empty after tokenisation, or overlapping an earlier entity.
            continue
        name = str(ent["entity"])
        if len(inside) == 1:
            tags[inside[0]] = "U-" + name
        else:
            tags[inside[0]] = "B-" + name
            for i in inside[1:-1]:
                tags[i] = "I-" + name
            tags[inside[-1]] = "L-" + name
    return tags


# ---------------------------------------------------------------------------
# The CRF
# ---------------------------------------------------------------------------


class _Batch:
    """Precomputed arrays of a group of sentences trained together."""

    def __init__(self, seqs: List[List[List[int]]], gold: List[List[int]], n_tags: int,
                 values: np.ndarray) -> None:
        self.size = len(seqs)
        self.lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        self.max_len = int(self.lengths.max())
        # Token rows in (sentence, position) order, flattened.
        self.sent_of = np.repeat(np.arange(self.size), self.lengths)
        self.pos_of = np.concatenate([np.arange(n) for n in self.lengths])
        rows, cols = [], []
        r = 0
        for s in seqs:
            for tok_feats in s:
                rows.extend([r] * len(tok_feats))
                cols.extend(tok_feats)
                r += 1
        cols_arr = np.array(cols, dtype=np.int64)
        # Local feature numbering: the batch's emission matrix is a dense
        # (tokens x features-used-in-batch) matrix of feature values times a
        # row subset of the weights, which BLAS does fast.
        self.features, local = np.unique(cols_arr, return_inverse=True)
        self.rows = np.array(rows, dtype=np.int64)
        self.local_cols = local.astype(np.int64)
        self.values = values[cols_arr]
        self.n_tokens = r
        gold_flat = np.concatenate([np.array(g, dtype=np.int64) for g in gold])
        self.gold_onehot = np.zeros((self.size, self.max_len, n_tags))
        self.gold_onehot[self.sent_of, self.pos_of, gold_flat] = 1.0
        self.active = np.arange(self.max_len)[None, :] < self.lengths[:, None]
        # Gold transition, start and end counts.
        self.gold_trans = np.zeros((n_tags, n_tags))
        self.gold_start = np.zeros(n_tags)
        self.gold_end = np.zeros(n_tags)
        for g in gold:
            self.gold_start[g[0]] += 1
            self.gold_end[g[-1]] += 1
            for a, b in zip(g, g[1:]):
                self.gold_trans[a, b] += 1

    def design(self) -> np.ndarray:
        x = np.zeros((self.n_tokens, len(self.features)))
        x[self.rows, self.local_cols] = self.values
        return x


class CRFEntityExtractor:
    """Linear-chain CRF tagger with BILOU tags."""

    def __init__(self, tags: List[str], vocab: Dict[str, int], emission: np.ndarray, transition: np.ndarray,
                 start: np.ndarray, end: np.ndarray, matcher: SpanMatcher) -> None:
        self.tags = tags
        self.vocab = vocab
        self.values = np.ones(len(vocab))
        for f, i in vocab.items():
            self.values[i] = feature_value(f)
        self.emission = emission
        self.transition = transition
        self.start = start
        self.end = end
        self.matcher = matcher
        allowed, first, last = _allowed(tags)
        self._allowed = allowed
        self._first = first
        self._last = last
        self._prepare()

    def _prepare(self) -> None:
        # Log-space scores with forbidden moves at -inf (for Viterbi) and the
        # matching probability-space factors (for forward-backward).
        self._trans_log = np.where(self._allowed, self.transition, _NEG)
        self._start_log = np.where(self._first, self.start, _NEG)
        self._end_log = np.where(self._last, self.end, _NEG)
        self._trans_exp = np.where(self._allowed, np.exp(np.minimum(self.transition, 50.0)), 0.0)
        self._start_exp = np.where(self._first, np.exp(np.minimum(self.start, 50.0)), 0.0)
        self._end_exp = np.where(self._last, np.exp(np.minimum(self.end, 50.0)), 0.0)

    # -- featurisation --------------------------------------------------------

    def _feature_ids(self, text: str, tokens: Sequence[Token]) -> List[List[int]]:
        marks = self.matcher.token_marks(text, tokens) if not self.matcher.empty else [[] for _ in tokens]
        vocab = self.vocab
        return [[vocab[f] for f in feats if f in vocab] for feats in token_features(tokens, marks)]

    # -- training -------------------------------------------------------------

    @classmethod
    def train(
        cls,
        sentences: Sequence[Tuple[str, Sequence[Token], Sequence[Dict[str, Any]]]],
        matcher: SpanMatcher,
        epochs: int,
        batch_size: int,
        learning_rate: float,
        l2: float,
        rng: np.random.Generator,
    ) -> "CRFEntityExtractor":
        """Fit on (text, tokens, annotated entities) triples."""
        entity_types = sorted({str(e["entity"]) for _, _, ents in sentences for e in ents})
        tags = make_tags(entity_types)
        tag_index = {t: i for i, t in enumerate(tags)}

        vocab: Dict[str, int] = {}
        seqs: List[List[List[int]]] = []
        gold: List[List[int]] = []
        for text, tokens, ents in sentences:
            if not tokens:
                continue
            marks = matcher.token_marks(text, tokens) if not matcher.empty else [[] for _ in tokens]
            ids = []
            for feats in token_features(tokens, marks):
                row = []
                for f in feats:
                    j = vocab.get(f)
                    if j is None:
                        j = vocab[f] = len(vocab)
                    row.append(j)
                ids.append(row)
            seqs.append(ids)
            gold.append([tag_index[t] for t in spans_to_tags(tokens, ents)])

        k = len(tags)
        model = cls(tags, vocab, np.zeros((len(vocab), k)), np.zeros((k, k)), np.zeros(k), np.zeros(k), matcher)
        if seqs:
            model._fit(seqs, gold, epochs, batch_size, learning_rate, l2, rng)
        return model

    def _fit(self, seqs: List[List[List[int]]], gold: List[List[int]], epochs: int, batch_size: int,
             lr: float, l2: float, rng: np.random.Generator) -> None:
        k = len(self.tags)
        # Sentences of similar length share a batch, so little time goes into
        # padding; batch order is reshuffled every epoch.
        order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), i))
        batch_size = max(1, batch_size)
        batches = []
        for first in range(0, len(order), batch_size):
            members = order[first:first + batch_size]
            batches.append(_Batch([seqs[i] for i in members], [gold[i] for i in members], k, self.values))
        # Keep the dense design matrices when they are small; else rebuild
        # each one when its batch comes up.
        cells = sum(b.n_tokens * len(b.features) for b in batches)
        designs = [b.design() for b in batches] if cells <= _DESIGN_CACHE_LIMIT else None
        n_total = float(len(seqs))
        We, T, s, e = self.emission, self.transition, self.start, self.end
        opt = Adam([We, T, s, e], lr)
        schedule = PlateauSchedule(opt)
        allowed_f = self._allowed.astype(np.float64)
        for _ in range(epochs):
            loss = 0.0
            for bi in rng.permutation(len(batches)):
                batch = batches[bi]
                x = designs[bi] if designs is not None else batch.design()
                W_local = We[batch.features]
                emis = np.zeros((batch.size, batch.max_len, k))
                emis[batch.sent_of, batch.pos_of] = x @ W_local
                # The transition factors follow the parameters Adam just moved.
                self._prepare()
                gE, gT, gs, ge, nll = self._gradients(batch, emis)
                loss += nll
                # Scale the L2 penalty by the batch's share of the data, so one
                # epoch applies it once in total whatever the batch size.
                share = batch.size / n_total
                gWe = np.zeros_like(We)
                gWe[batch.features] = x.T @ gE[batch.sent_of, batch.pos_of]
                gWe += l2 * share * We
                gT = gT * allowed_f + l2 * share * T
                opt.step([gWe / batch.size, gT / batch.size, (gs + l2 * share * s) / batch.size,
                          (ge + l2 * share * e) / batch.size])
            penalty = 0.5 * l2 * (float(np.vdot(We, We)) + float(np.vdot(T, T)) + float(s @ s) + float(e @ e))
            if schedule.done((loss + penalty) / n_total):
                break
        self._prepare()

    def _gradients(self, batch: _Batch, emis: np.ndarray
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """Gradients of the batch's summed negative log-likelihood, and that sum."""
        alpha, beta, scale, z_end, p = self._forward_backward(emis, batch.active, batch.lengths)
        emax = emis.max(axis=2)
        log_z = float(np.log(scale).sum() + (emax * batch.active).sum() + np.log(z_end).sum())
        gold_score = float((emis * batch.gold_onehot).sum() + (self.transition * batch.gold_trans).sum()
                           + self.start @ batch.gold_start + self.end @ batch.gold_end)
        gamma = alpha * beta / z_end[:, None, None]
        gamma *= batch.active[:, :, None]
        gE = gamma - batch.gold_onehot
        # Pair marginals summed over the batch and time, in one product.
        if batch.max_len > 1:
            act = batch.active[:, 1:]
            a_prev = (alpha[:, :-1] / z_end[:, None, None])[act]
            b_next = (p[:, 1:] * beta[:, 1:] / scale[:, 1:, None])[act]
            pair = self._trans_exp * (a_prev.T @ b_next)
        else:
            pair = np.zeros_like(self._trans_exp)
        gT = pair - batch.gold_trans
        gs = gamma[:, 0].sum(axis=0) - batch.gold_start
        last = gamma[np.arange(batch.size), batch.lengths - 1]
        ge = last.sum(axis=0) - batch.gold_end
        return gE, gT, gs, ge, log_z - gold_score

    def _forward_backward(self, emis: np.ndarray, active: np.ndarray, lengths: np.ndarray
                          ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Scaled forward-backward over a padded batch ``emis`` (B, T, K).

        Returns alpha and beta (each position normalised), the per-position
        scale factors, the final normaliser (sum of alpha times end weights)
        and the per-position emission factors ``p``.  Padded positions copy
        their neighbour, so every sequence ends at the last column.
        """
        b_size, t_max, k = emis.shape
        p = np.exp(emis - emis.max(axis=2, keepdims=True))
        alpha = np.empty((b_size, t_max, k))
        beta = np.empty((b_size, t_max, k))
        scale = np.ones((b_size, t_max))
        a = self._start_exp * p[:, 0]
        c = np.maximum(a.sum(axis=1), 1e-300)
        alpha[:, 0] = a / c[:, None]
        scale[:, 0] = c
        for t in range(1, t_max):
            a = (alpha[:, t - 1] @ self._trans_exp) * p[:, t]
            c = np.maximum(a.sum(axis=1), 1e-300)
            on = active[:, t]
            alpha[:, t] = np.where(on[:, None], a / c[:, None], alpha[:, t - 1])
            scale[:, t] = np.where(on, c, 1.0)
        z_end = np.maximum((alpha[:, t_max - 1] * self._end_exp).sum(axis=1), 1e-300)
        beta[:, t_max - 1] = self._end_exp
        trans_t = self._trans_exp.T
        for t in range(t_max - 2, -1, -1):
            b = ((p[:, t + 1] * beta[:, t + 1]) @ trans_t) / scale[:, t + 1, None]
            beta[:, t] = np.where(active[:, t + 1, None], b, beta[:, t + 1])
        return alpha, beta, scale, z_end, p

    # -- prediction -------------------------------------------------------------

    def extract(self, text: str, tokens: Sequence[Token]) -> List[Dict[str, Any]]:
        """Entities found in ``tokens`` of ``text``, with a confidence each."""
        if not tokens:
            return []
        ids = self._feature_ids(text, tokens)
        n = len(tokens)
        k = len(self.tags)
        lengths = np.fromiter((len(r) for r in ids), dtype=np.int64, count=n)
        flat = np.fromiter((j for r in ids for j in r), dtype=np.int64, count=int(lengths.sum()))
        emis = np.zeros((n, k))
        nonempty = np.flatnonzero(lengths)
        if len(flat):
            offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            emis[nonempty] = np.add.reduceat(self.emission[flat] * self.values[flat, None], offsets[nonempty],
                                             axis=0)

        path = self._viterbi(emis)
        if all(self.tags[t] == OUTSIDE for t in path):
            return []
        gamma = self._marginals(emis)

        entities = []
        i = 0
        while i < n:
            tag = self.tags[path[i]]
            if tag == OUTSIDE:
                i += 1
                continue
            j = i
            if tag[0] == "B":
                while j + 1 < n and self.tags[path[j]][0] != "L":
                    j += 1
            conf = min(float(gamma[t, path[t]]) for t in range(i, j + 1))
            start, end = tokens[i].start, tokens[j].end
            entities.append({
                "start": start,
                "end": end,
                "value": text[start:end],
                "entity": tag[2:],
                "confidence": min(1.0, max(0.0, conf)),
            })
            i = j + 1
        return entities

    def _marginals(self, emis: np.ndarray) -> np.ndarray:
        """Per-token tag marginals of one sentence (scaled forward-backward)."""
        n = emis.shape[0]
        p = np.exp(emis - emis.max(axis=1, keepdims=True))
        trans = self._trans_exp
        alpha = np.empty_like(p)
        scale = np.empty(n)
        a = self._start_exp * p[0]
        for t in range(n):
            if t:
                a = (alpha[t - 1] @ trans) * p[t]
            c = max(float(a.sum()), 1e-300)
            alpha[t] = a / c
            scale[t] = c
        beta = np.empty_like(p)
        beta[n - 1] = self._end_exp
        trans_t = trans.T
        for t in range(n - 2, -1, -1):
            beta[t] = ((p[t + 1] * beta[t + 1]) @ trans_t) / scale[t + 1]
        gamma = alpha * beta
        return gamma / np.maximum(gamma.sum(axis=1, keepdims=True), 1e-300)

    def _viterbi(self, emis: np.ndarray) -> List[int]:
        n = emis.shape[0]
        delta = self._start_log + emis[0]
        back = np.empty((n, emis.shape[1]), dtype=np.int64)
        trans = self._trans_log
        for t in range(1, n):
            cand = delta[:, None] + trans
            back[t] = cand.argmax(axis=0)
            delta = cand.max(axis=0) + emis[t]
        delta = delta + self._end_log
        best = int(delta.argmax())
        path = [best]
        for t in range(n - 1, 0, -1):
            best = int(back[t, best])
            path.append(best)
        path.reverse()
        return path

    # -- persistence ------------------------------------------------------------

    def to_parts(self) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
        vocab_list = [""] * len(self.vocab)
        for f, i in self.vocab.items():
            vocab_list[i] = f
        meta = {"tags": self.tags, "vocabulary": vocab_list}
        arrays = {"emission": self.emission, "transition": self.transition,
                  "start": self.start, "end": self.end}
        return meta, arrays

    @classmethod
    def from_parts(cls, meta: Dict[str, Any], arrays: Dict[str, np.ndarray],
                   matcher: SpanMatcher) -> "CRFEntityExtractor":
        tags = [str(t) for t in meta["tags"]]
        vocab_list = [str(f) for f in meta["vocabulary"]]
        if not tags or tags[0] != OUTSIDE or \
                any(len(t) < 3 or t[0] not in "BILU" or t[1] != "-" for t in tags[1:]):
            raise ValueError("entity extractor tag list is malformed")
        emission = np.asarray(arrays["emission"], dtype=np.float64)
        transition = np.asarray(arrays["transition"], dtype=np.float64)
        start = np.asarray(arrays["start"], dtype=np.float64)
        end = np.asarray(arrays["end"], dtype=np.float64)
        k = len(tags)
        if emission.shape != (len(vocab_list), k) or transition.shape != (k, k) or \
                start.shape != (k,) or end.shape != (k,):
            raise ValueError("entity extractor arrays do not match its vocabulary and tags")
        return cls(tags, {f: i for i, f in enumerate(vocab_list)}, emission, transition, start, end, matcher)
