"""Intent classifier of the local NLU model.

Features are character n-grams taken inside word boundaries (so ``sync``,
``Sync`` and ``synchronization`` share evidence, and unseen inflections still
match) plus optional word n-grams.  Digits are folded to ``0`` first, so
``12.04`` and ``16.10`` look alike.  Each feature block is weighted with
sublinear TF-IDF and L2-normalised.

Two linear softmax classifiers (multinomial logistic regression, trained with
Adam on a class-balanced cross-entropy with an L2 penalty, the step halved
whenever the loss stalls) are fitted on two weightings of the same features,
and their probabilities are averaged:

* the plain TF-IDF view;
* a "keyword" view in which each feature is further scaled by how concentrated
  its occurrences are in one intent (one minus the normalised entropy of its
  class distribution).  Words used by every intent ("how", "do", "my") fade,
  words specific to one intent stand out.

On the benchmark corpora (bench/nlu_corpora.py) the plain view alone reached
intent F1 0.92 (AskUbuntu) / 0.83 (WebApplications), the keyword view alone
0.91 / 0.85, and their average 0.92 / 0.85.

Everything is deterministic: the vocabulary is built in first-seen order over
the training examples, weights start at zero, and the only randomness is the
mini-batch order drawn from the generator the caller passes in.
"""

import math
import re
from collections import Counter
from typing import Any, Dict, Iterable, List, Sequence, Tuple

import numpy as np

# Largest number of cells (rows x features) of a training matrix that is
# densified in one piece (32 MB of float64); larger data is densified per
# mini-batch.  Dense blocks go through BLAS, which on these sizes was several
# times faster than numpy gather / reduceat arithmetic on the sparse arrays.
_DENSE_LIMIT = 4_000_000

_DIGIT_RE = re.compile(r"\d")

# Training schedule (see PlateauSchedule): the step size is halved when the
# epoch loss has not improved by this relative amount for this many epochs in
# a row, and training stops once the step is below this fraction of the
# initial one.
_TOLERANCE = 1e-4
_PATIENCE = 3
_MIN_LR_FRACTION = 1.0 / 128

# The exponent applied to the class-concentration weight of the keyword view:
# a square root keeps rarely-seen but spread-out features from vanishing.
_CONCENTRATION_POWER = 0.5

# Norm of the block of regex / lookup match features in a message's vector
# (the text's own features have norm 1).
_EXTRA_SCALE = 0.5


# ---------------------------------------------------------------------------
# Numeric helpers (Adam and PlateauSchedule are shared with the entity
# extractor)
# ---------------------------------------------------------------------------


class CSRRows:
    """A minimal CSR matrix: ``indptr`` (n+1), ``indices`` and ``data`` (nnz)."""

    __slots__ = ("indptr", "indices", "data", "n_cols")

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_cols: int) -> None:
        self.indptr = indptr
        self.indices = indices
        self.data = data
        self.n_cols = n_cols

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    @classmethod
    def from_rows(cls, rows: Sequence[Tuple[np.ndarray, np.ndarray]], n_cols: int) -> "CSRRows":
        lengths = np.fromiter((len(r[0]) for r in rows), dtype=np.int64, count=len(rows))
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        if not rows:
            return cls(indptr, np.zeros(0, dtype=np.int64), np.zeros(0), n_cols)
        indices = np.concatenate([np.asarray(r[0], dtype=np.int64) for r in rows])
        data = np.concatenate([np.asarray(r[1], dtype=np.float64) for r in rows])
        return cls(indptr, indices, data, n_cols)

    def take(self, rows: np.ndarray) -> "CSRRows":
        """Sub-matrix made of the given rows, in the given order."""
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        # Source position of each output entry: the start of its source row
        # plus its offset inside that row.
        src = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return CSRRows(indptr, self.indices[src], self.data[src], self.n_cols)

    def to_dense(self) -> np.ndarray:
        out = np.zeros((self.n_rows, self.n_cols))
        rows = np.repeat(np.arange(self.n_rows), np.diff(self.indptr))
        # Within a row every column occurs once, so plain fancy assignment
        # cannot lose duplicates.
        out[rows, self.indices] = self.data
        return out


class Adam:
    """Adam optimiser over a list of numpy parameter arrays (updated in place)."""

    def __init__(self, params: List[np.ndarray], lr: float, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8) -> None:
        self.params = params
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads: List[np.ndarray]) -> None:
        self.t += 1
        c1 = 1.0 - self.beta1 ** self.t
        c2 = 1.0 - self.beta2 ** self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            v += (1.0 - self.beta2) * (g * g)
            p -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


class PlateauSchedule:
    """Halves the optimiser's step when the epoch loss stalls; says when to stop.

    The objectives here are convex and flatten out long before an epoch
    budget meant for the largest data sets runs out; Adam at a fixed step
    keeps circling the optimum, so the step is halved whenever the loss has
    not improved (relatively) for a few epochs, and training ends once the
    step has become negligible.
    """

    def __init__(self, opt: Adam) -> None:
        self.opt = opt
        self.initial_lr = opt.lr
        self.best = math.inf
        self.stale = 0

    def done(self, loss: float) -> bool:
        """Record an epoch's loss; True when training should stop."""
        if self.best == math.inf or loss < self.best - abs(self.best) * _TOLERANCE:
            self.best = loss
            self.stale = 0
            return False
        self.stale += 1
        if self.stale < _PATIENCE:
            return False
        self.stale = 0
        self.opt.lr *= 0.5
        return self.opt.lr < self.initial_lr * _MIN_LR_FRACTION


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------------------
# Featurisation
# ---------------------------------------------------------------------------


def normalize_word(word: str) -> str:
    """The form a token takes in intent features: lower-cased, digits as ``0``."""
    return _DIGIT_RE.sub("0", word.lower())


def ngram_features(
    words: Sequence[str],
    word_ngrams: Tuple[int, int],
    char_ngrams: Tuple[int, int],
    extra: Iterable[str] = (),
) -> Tuple[Counter, Counter, Counter]:
    """Count the word-, char- and extra-block feature strings of one message.

    ``words`` are normalised tokens; ``extra`` are pseudo-words such as regex or
    lookup-table match names.  A range whose upper end is 0 switches that
    block off.
    """
    wcounts: Counter = Counter()
    lo, hi = word_ngrams
    if hi >= 1:
        n_words = len(words)
        for n in range(max(lo, 1), hi + 1):
            for i in range(n_words - n + 1):
                wcounts["w " + " ".join(words[i:i + n])] += 1
    xcounts: Counter = Counter("x " + e for e in extra)
    ccounts: Counter = Counter()
    clo, chi = char_ngrams
    if chi >= 1:
        clo = max(clo, 1)
        for w in words:
            # Padding marks word starts and ends, so prefixes and suffixes are
            # features distinct from word-internal n-grams.
            padded = " " + w + " "
            size = len(padded)
            for n in range(clo, min(chi, size) + 1):
                for i in range(size - n + 1):
                    ccounts[padded[i:i + n]] += 1
    return wcounts, ccounts, xcounts


def _lookup(counts: Counter, vocab: Dict[str, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Vocabulary indices and sublinear term frequencies of the known features."""
    idx = []
    tf = []
    for feat, count in counts.items():
        j = vocab.get(feat)
        if j is not None:
            idx.append(j)
            tf.append(count)
    tf_arr = np.array(tf, dtype=np.float64)
    # Sublinear term frequency: a repeated word is more evidence, but not
    # linearly more.
    return np.array(idx, dtype=np.int64), 1.0 + np.log(tf_arr) if len(tf) else tf_arr


def _weighted(idx: np.ndarray, tf: np.ndarray, weight: np.ndarray, scale: float) -> np.ndarray:
    vals = tf * weight[idx]
    norm = math.sqrt(float(vals @ vals))
    return vals * (scale / norm) if norm > 0.0 else vals


# ---------------------------------------------------------------------------
# Classifier
# ---------------------------------------------------------------------------


class IntentClassifier:
    """Averaged pair of linear softmax classifiers over sparse n-gram features."""

    def __init__(
        self,
        labels: List[str],
        vocab: Dict[str, int],
        feature_weights: List[np.ndarray],
        weights: List[np.ndarray],
        biases: List[np.ndarray],
        word_ngrams: Tuple[int, int],
        char_ngrams: Tuple[int, int],
    ) -> None:
        self.labels = labels
        self.vocab = vocab
        # One entry per view: the per-feature weight (idf, or idf times the
        # class concentration), the (features x labels) weights, the biases.
        self.feature_weights = feature_weights
        self.weights = weights
        self.biases = biases
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams

    # -- featurisation ------------------------------------------------------

    def _vectors(self, words: Sequence[str], extra: Iterable[str]) -> List[Tuple[np.ndarray, np.ndarray]]:
        """The (indices, values) feature vector of a message, once per view."""
        wcounts, ccounts, xcounts = ngram_features(words, self.word_ngrams, self.char_ngrams, extra)
        # Word and char blocks get half the squared norm each when both are
        # present, so that long words with many character n-grams do not
        # drown out the words.  Regex / lookup matches are a block of their
        # own with a fixed norm, so a match adds evidence without diluting
        # the text's own features.
        scale = math.sqrt(0.5) if (wcounts and ccounts) else 1.0
        w_idx, w_tf = _lookup(wcounts, self.vocab)
        c_idx, c_tf = _lookup(ccounts, self.vocab)
        x_idx, x_tf = _lookup(xcounts, self.vocab)
        idx = np.concatenate((w_idx, c_idx, x_idx))
        out = []
        for fw in self.feature_weights:
            vals = np.concatenate((_weighted(w_idx, w_tf, fw, scale), _weighted(c_idx, c_tf, fw, scale),
                                   _weighted(x_idx, x_tf, fw, _EXTRA_SCALE)))
            out.append((idx, vals))
        return out

    # -- training -------------------------------------------------------------

    @classmethod
    def train(
        cls,
        docs: Sequence[Tuple[Sequence[str], Sequence[str]]],
        labels: Sequence[str],
        word_ngrams: Tuple[int, int],
        char_ngrams: Tuple[int, int],
        epochs: int,
        batch_size: int,
        learning_rate: float,
        l2: float,
        min_count: int,
        balanced: bool,
        keyword_view: bool,
        rng: np.random.Generator,
    ) -> "IntentClassifier":
        """Fit on ``docs`` (normalised words, extra pseudo-words) and their labels."""
        label_names = sorted(set(labels))
        label_index = {lab: i for i, lab in enumerate(label_names)}
        y = np.array([label_index[lab] for lab in labels], dtype=np.int64)
        n_docs = len(docs)
        n_classes = len(label_names)

        doc_counts = [ngram_features(w, word_ngrams, char_ngrams, e) for w, e in docs]
        df: Counter = Counter()
        # Per-class document frequency, for the keyword view.
        class_df: Dict[str, Counter] = {}
        order: Dict[str, int] = {}
        for (wc, cc, xc), k in zip(doc_counts, y):
            for feat in list(wc) + list(cc) + list(xc):
                df[feat] += 1
                if feat not in order:
                    order[feat] = len(order)
                    class_df[feat] = Counter()
                class_df[feat][int(k)] += 1
        kept = [f for f in order if df[f] >= min_count]
        vocab = {f: i for i, f in enumerate(kept)}
        idf = np.array([math.log((1.0 + n_docs) / (1.0 + df[f])) + 1.0 for f in kept], dtype=np.float64)

        feature_weights = [idf]
        if keyword_view and n_classes > 1:
            feature_weights.append(idf * _class_concentration(kept, class_df, y, n_classes) ** _CONCENTRATION_POWER)

        model = cls(label_names, vocab, feature_weights,
                    [np.zeros((len(vocab), n_classes)) for _ in feature_weights],
                    [np.zeros(n_classes) for _ in feature_weights],
                    (int(word_ngrams[0]), int(word_ngrams[1])), (int(char_ngrams[0]), int(char_ngrams[1])))
        if n_classes < 2 or n_docs == 0:
            # One intent (or none): there is nothing to separate.
            return model
        per_doc = [model._vectors(w, e) for w, e in docs]
        for view in range(len(feature_weights)):
            X = CSRRows.from_rows([vecs[view] for vecs in per_doc], len(vocab))
            _fit_softmax(X, y, model.weights[view], model.biases[view], epochs, batch_size,
                         learning_rate, l2, balanced, rng)
        return model

    # -- prediction -------------------------------------------------------------

    def predict_proba(self, words: Sequence[str], extra: Iterable[str] = ()) -> np.ndarray:
        """Intent probabilities in ``self.labels`` order."""
        if len(self.labels) == 1:
            return np.ones(1)
        total = None
        for (idx, val), W, b in zip(self._vectors(words, extra), self.weights, self.biases):
            scores = val @ W[idx] + b if len(idx) else b
            p = softmax(scores)
            total = p if total is None else total + p
        return total / len(self.weights)

    # -- persistence ------------------------------------------------------------

    def to_parts(self) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
        vocab_list = [""] * len(self.vocab)
        for f, i in self.vocab.items():
            vocab_list[i] = f
        meta = {
            "labels": self.labels,
            "vocabulary": vocab_list,
            "word_ngrams": list(self.word_ngrams),
            "char_ngrams": list(self.char_ngrams),
            "views": len(self.weights),
        }
        arrays: Dict[str, np.ndarray] = {}
        for v, (fw, W, b) in enumerate(zip(self.feature_weights, self.weights, self.biases)):
            arrays["feature_weights_%d" % v] = fw
            arrays["weights_%d" % v] = W
            arrays["bias_%d" % v] = b
        return meta, arrays

    @classmethod
    def from_parts(cls, meta: Dict[str, Any], arrays: Dict[str, np.ndarray]) -> "IntentClassifier":
        labels = [str(x) for x in meta["labels"]]
        vocab_list = [str(x) for x in meta["vocabulary"]]
        n_views = int(meta["views"])
        if n_views < 1:
            raise ValueError("intent classifier has no views")
        fws, Ws, bs = [], [], []
        for v in range(n_views):
            fw = np.asarray(arrays["feature_weights_%d" % v], dtype=np.float64)
            W = np.asarray(arrays["weights_%d" % v], dtype=np.float64)
            b = np.asarray(arrays["bias_%d" % v], dtype=np.float64)
            if fw.shape != (len(vocab_list),) or W.shape != (len(vocab_list), len(labels)) or b.shape != (len(labels),):
                raise ValueError("intent classifier arrays do not match its vocabulary and labels")
            fws.append(fw)
            Ws.append(W)
            bs.append(b)
        wn = (int(meta["word_ngrams"][0]), int(meta["word_ngrams"][1]))
        cn = (int(meta["char_ngrams"][0]), int(meta["char_ngrams"][1]))
        return cls(labels, {f: i for i, f in enumerate(vocab_list)}, fws, Ws, bs, wn, cn)


def _class_concentration(features: List[str], class_df: Dict[str, Counter], y: np.ndarray,
                         n_classes: int) -> np.ndarray:
    """1 - normalised entropy of each feature's (class-size corrected) class distribution."""
    class_sizes = np.bincount(y, minlength=n_classes).astype(np.float64)
    counts = np.zeros((len(features), n_classes))
    for i, f in enumerate(features):
        for k, c in class_df[f].items():
            counts[i, k] = c
    # Rates per class, so a big intent does not look like the home of every
    # common word; the small additive term keeps single sightings from
    # counting as perfectly concentrated evidence.
    rates = counts / class_sizes + 1.0 / len(y)
    p = rates / rates.sum(axis=1, keepdims=True)
    entropy = -(p * np.log(p)).sum(axis=1)
    return np.clip(1.0 - entropy / math.log(n_classes), 0.0, 1.0)


def _fit_softmax(X: CSRRows, y: np.ndarray, W: np.ndarray, b: np.ndarray, epochs: int, batch_size: int,
                 lr: float, l2: float, balanced: bool, rng: np.random.Generator) -> None:
    """Mini-batch Adam on the (optionally class-balanced) mean cross-entropy + L2."""
    n = X.n_rows
    n_classes = W.shape[1]
    opt = Adam([W, b], lr)
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), y] = 1.0
    if balanced:
        # Weight each example by n / (classes * class size): every intent
        # weighs the same in the loss, so a big intent does not claim all the
        # generic phrasing ("how do I ...").
        freq = np.bincount(y, minlength=n_classes).astype(np.float64)
        freq[freq == 0] = 1.0
        sample_w = (n / (n_classes * freq))[y]
    else:
        sample_w = np.ones(n)
    batch_size = max(1, min(batch_size, n))
    dense_all = X.to_dense() if n * X.n_cols <= _DENSE_LIMIT else None
    rows = np.arange(n)
    schedule = PlateauSchedule(opt)
    for _ in range(epochs):
        perm = rng.permutation(n) if batch_size < n else rows
        loss = 0.0
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            xb = dense_all[idx] if dense_all is not None else X.take(idx).to_dense()
            probs = softmax(xb @ W + b)
            loss -= float(np.log(probs[np.arange(len(idx)), y[idx]] + 1e-300) @ sample_w[idx])
            g = (probs - onehot[idx]) * (sample_w[idx] / len(idx))[:, None]
            gW = xb.T @ g
            gW += l2 * W
            opt.step([gW, g.sum(axis=0)])
        if schedule.done(loss / n + 0.5 * l2 * float(np.vdot(W, W))):
            break
