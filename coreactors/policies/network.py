"""A small feed-forward neural network classifier written in plain numpy.

The dialogue policy that predicts the bot's next action (the job Rasa Core's
``KerasPolicy`` did) needs a classifier that maps a featurized conversation
state (a fixed-length float vector, where ``-1`` marks padding) to a
probability for every action in the domain. Pulling in a deep learning
framework for a network this size costs far more in install size, start-up
time and per-prediction overhead than it buys, so this module provides just
what the policy needs:

* dense ReLU hidden layers, a softmax output and cross-entropy loss;
* Adam, mini-batches, optional inverted dropout and L2 weight decay;
* early stopping and an optional validation hold-out;
* bit-for-bit reproducible training for a given ``random_seed``;
* persistence as a single ``.npz`` file that loads without pickle;
* ``predict_one``, a low-overhead path for predicting on one conversation
  state at a time, which is what a live server does on every turn.

All arrays are float32: the precision is plenty for a classifier and it
halves memory traffic compared with float64.
"""

import json
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["FeedForwardClassifier"]

_FLOAT = np.float32
_FORMAT_VERSION = 1

# Adam constants from Kingma & Ba (2015).
_BETA1 = 0.9
_BETA2 = 0.999
_EPSILON = 1e-7

# Early stopping: an epoch only counts as progress if it lowers the training
# loss by more than this much.
_MIN_LOSS_DELTA = 1e-4
# ...and training is considered finished once everything is fitted this well.
_CONVERGED_LOSS = 0.01

ProgressCallback = Callable[[int, int, float, float], None]


class _Workspace:
    """Preallocated scratch arrays for one mini-batch size.

    Training runs tens of thousands of tiny steps, so allocating every
    intermediate array anew would cost more than the arithmetic itself.
    """

    def __init__(self, batch_size: int, layer_sizes: Sequence[int], use_dropout: bool) -> None:
        hidden = layer_sizes[1:-1]
        num_classes = layer_sizes[-1]
        self.rows = np.arange(batch_size)
        self.x = np.empty((batch_size, layer_sizes[0]), dtype=_FLOAT)
        self.activations = [np.empty((batch_size, h), dtype=_FLOAT) for h in hidden]
        self.deltas = [np.empty((batch_size, h), dtype=_FLOAT) for h in hidden]
        self.active = [np.empty((batch_size, h), dtype=bool) for h in hidden]
        self.masks = (
            [np.empty((batch_size, h), dtype=_FLOAT) for h in hidden] if use_dropout else []
        )
        self.logits = np.empty((batch_size, num_classes), dtype=_FLOAT)
        self.row_max = np.empty((batch_size, 1), dtype=_FLOAT)
        self.row_sum = np.empty((batch_size, 1), dtype=_FLOAT)


class FeedForwardClassifier:
    """Multi-class classifier: dense ReLU layers followed by a softmax.

    Hyperparameters:
        hidden_sizes: number of units of each hidden layer, input side first.
            An empty sequence gives multinomial logistic regression.
        epochs: maximum number of passes over the training data.
        batch_size: examples per Adam update.
        learning_rate: Adam step size.
        validation_split: fraction of the examples held out (after a seeded
            shuffle) to measure ``val_accuracy`` each epoch; they are not
            trained on.
        dropout: probability of zeroing a hidden unit during training.
        l2: weight decay strength; the penalty is ``l2 / 2 * sum(W ** 2)``
            over the weight matrices (biases are not penalised).
        random_seed: seeds weight initialisation, shuffling and dropout.
        patience: stop once the training loss has failed to improve by more
            than 1e-4 for this many consecutive epochs. ``patience >= epochs``
            turns this off.

    After ``fit``, ``history`` holds one dict per epoch run, with ``epoch``,
    ``loss`` and ``accuracy`` (training cross-entropy and accuracy averaged
    over the epoch's mini-batches) and ``val_accuracy`` when there is a
    validation split.
    """

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (64,),
        epochs: int = 100,
        batch_size: int = 32,
        learning_rate: float = 0.003,
        validation_split: float = 0.0,
        dropout: float = 0.0,
        l2: float = 0.0,
        random_seed: int = 42,
        patience: int = 10,
    ) -> None:
        hidden = tuple(int(h) for h in hidden_sizes)
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden layer sizes must be positive, got {list(hidden_sizes)}")
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if l2 < 0:
            raise ValueError(f"l2 must not be negative, got {l2}")
        if patience < 0:
            raise ValueError(f"patience must not be negative, got {patience}")

        self.hidden_sizes = hidden
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.validation_split = float(validation_split)
        self.dropout = float(dropout)
        self.l2 = float(l2)
        self.random_seed = int(random_seed)
        self.patience = int(patience)

        self.num_classes: Optional[int] = None
        self.input_dim: Optional[int] = None
        self.history: List[Dict[str, float]] = []

        # All weights and biases live in one flat buffer (``_params``) and
        # ``_layers`` holds (W, b) views into it: Adam can then update every
        # parameter with a handful of whole-buffer operations instead of a
        # handful per array.
        self._params: Optional[np.ndarray] = None
        self._layers: List[Tuple[np.ndarray, np.ndarray]] = []
        self._hidden_layers: Tuple[Tuple[np.ndarray, np.ndarray], ...] = ()
        self._output_layer: Optional[Tuple[np.ndarray, np.ndarray]] = None
        self._uniform: Optional[np.ndarray] = None

    # ------------------------------------------------------------------
    # public API

    @property
    def is_trained(self) -> bool:
        return self._params is not None

    def get_config(self) -> Dict[str, Any]:
        """Hyperparameters and shapes as a JSON-serialisable dict."""
        return {
            "format_version": _FORMAT_VERSION,
            "hidden_sizes": list(self.hidden_sizes),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "validation_split": self.validation_split,
            "dropout": self.dropout,
            "l2": self.l2,
            "random_seed": self.random_seed,
            "patience": self.patience,
            "num_classes": self.num_classes,
            "input_dim": self.input_dim,
            "trained": self.is_trained,
        }

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        num_classes: int,
        progress: Optional[ProgressCallback] = None,
    ) -> "FeedForwardClassifier":
        """Train from scratch on ``X`` (n, d) and integer labels ``y`` (n,).

        Labels must lie in ``[0, num_classes)``; classes that never occur
        simply end up with low probability. ``progress(epoch, epochs, loss,
        accuracy)`` is called after every epoch, ``epoch`` counting from 1.
        With no examples the model is left untrained and predicts uniform
        probabilities over ``num_classes``.
        """
        X = np.asarray(X)
        y = np.asarray(y)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-dimensional, got shape {X.shape}")
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
        num_classes = int(num_classes)
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if y.size:
            if not np.issubdtype(y.dtype, np.integer):
                if not np.array_equal(y, np.round(y)):
                    raise ValueError("y must contain integer class ids")
            if y.min() < 0 or y.max() >= num_classes:
                raise ValueError(
                    f"class ids must be in [0, {num_classes}), "
                    f"got range [{y.min()}, {y.max()}]"
                )

        self.num_classes = num_classes
        self.input_dim = X.shape[1]
        self.history = []
        self._set_params(None)
        if X.shape[0] == 0:
            return self

        X = np.ascontiguousarray(X, dtype=_FLOAT)
        y = y.astype(np.intp)

        # A fresh generator per fit makes refitting the same instance
        # reproduce the same model.
        rng = np.random.default_rng(self.random_seed)
        sizes = self._layer_sizes()
        self._set_params(self._initial_params(sizes, rng))

        X_train, y_train, X_val, y_val = self._split(X, y, rng)
        self._train(X_train, y_train, X_val, y_val, rng, progress)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, num_classes), float32."""
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-dimensional, got shape {X.shape}")
        uniform = self._require_uniform()
        if self._params is None:
            return np.tile(uniform, (X.shape[0], 1))
        if X.shape[1] != self.input_dim:
            raise ValueError(f"expected {self.input_dim} features, got {X.shape[1]}")
        probs = self._logits(np.ascontiguousarray(X, dtype=_FLOAT))
        _softmax_rows(probs)
        return probs

    def predict_one(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for a single example ``x`` of shape (d,).

        Called once per dialogue turn, so it skips the validation that
        ``predict_proba`` does and touches only cached references.
        """
        output_layer = self._output_layer
        if output_layer is None:
            return self._require_uniform().copy()
        if x.dtype != _FLOAT:
            x = x.astype(_FLOAT)
        h = x
        for W, b in self._hidden_layers:
            # Working in place on the fresh matmul result saves allocations
            # without shared scratch buffers, so concurrent calls stay safe.
            h = h @ W
            h += b
            np.maximum(h, 0.0, out=h)
        W, b = output_layer
        z = h @ W
        z += b
        z -= z.max()
        np.exp(z, out=z)
        z /= z.sum()
        return z

    def to_arrays(self) -> Dict[str, np.ndarray]:
        """The model as plain arrays: ``config`` (a 0-d JSON string array)
        plus ``W{i}``/``b{i}`` for each layer when trained."""
        arrays: Dict[str, np.ndarray] = {"config": np.array(json.dumps(self.get_config()))}
        for i, (W, b) in enumerate(self._layers):
            arrays[f"W{i}"] = W.copy()
            arrays[f"b{i}"] = b.copy()
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray]) -> "FeedForwardClassifier":
        """Rebuild a model from the output of ``to_arrays``."""
        config = json.loads(str(np.asarray(arrays["config"])[()]))
        version = config.get("format_version")
        if version != _FORMAT_VERSION:
            raise ValueError(f"unsupported model format version {version!r}")
        model = cls(
            hidden_sizes=config["hidden_sizes"],
            epochs=config["epochs"],
            batch_size=config["batch_size"],
            learning_rate=config["learning_rate"],
            validation_split=config["validation_split"],
            dropout=config["dropout"],
            l2=config["l2"],
            random_seed=config["random_seed"],
            patience=config["patience"],
        )
        model.num_classes = config["num_classes"]
        model.input_dim = config["input_dim"]
        if not config["trained"]:
            return model

        sizes = model._layer_sizes()
        flat = np.empty(_num_params(sizes), dtype=_FLOAT)
        for i, (W, b) in enumerate(_layer_views(flat, sizes)):
            stored_W = np.asarray(arrays[f"W{i}"])
            stored_b = np.asarray(arrays[f"b{i}"])
            if stored_W.shape != W.shape or stored_b.shape != b.shape:
                raise ValueError(
                    f"layer {i} has shapes {stored_W.shape}/{stored_b.shape}, "
                    f"config implies {W.shape}/{b.shape}"
                )
            W[...] = stored_W
            b[...] = stored_b
        model._set_params(flat)
        return model

    def save(self, path: str) -> None:
        """Write the model to ``path`` as a single ``.npz`` file."""
        # Passing an open file stops np.savez from appending ".npz" to the
        # name, so the model ends up exactly where the caller asked.
        with open(path, "wb") as f:
            np.savez(f, **self.to_arrays())

    @classmethod
    def load(cls, path: str) -> "FeedForwardClassifier":
        """Read a model written by ``save``."""
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        return cls.from_arrays(arrays)

    # ------------------------------------------------------------------
    # internals

    def _layer_sizes(self) -> List[int]:
        assert self.input_dim is not None and self.num_classes is not None
        return [self.input_dim, *self.hidden_sizes, self.num_classes]

    def _require_uniform(self) -> np.ndarray:
        if self._uniform is None:
            if self.num_classes is None:
                raise RuntimeError("the number of classes is unknown until fit() has been called")
            self._uniform = np.full(self.num_classes, 1.0 / self.num_classes, dtype=_FLOAT)
        return self._uniform

    def _set_params(self, flat: Optional[np.ndarray]) -> None:
        self._params = flat
        self._uniform = None
        if flat is None:
            self._layers = []
            self._hidden_layers = ()
            self._output_layer = None
        else:
            self._layers = _layer_views(flat, self._layer_sizes())
            self._hidden_layers = tuple(self._layers[:-1])
            self._output_layer = self._layers[-1]

    def _initial_params(self, sizes: Sequence[int], rng: np.random.Generator) -> np.ndarray:
        flat = np.zeros(_num_params(sizes), dtype=_FLOAT)
        views = _layer_views(flat, sizes)
        for i, (W, _) in enumerate(views):
            fan_in, fan_out = W.shape
            if i < len(views) - 1:
                # He initialisation keeps ReLU activations from shrinking or
                # blowing up layer after layer.
                W[...] = rng.standard_normal(W.shape, dtype=_FLOAT)
                W *= np.sqrt(2.0 / max(fan_in, 1))
            else:
                # Glorot initialisation for the linear layer feeding softmax.
                limit = np.sqrt(6.0 / max(fan_in + fan_out, 1))
                W[...] = rng.uniform(-limit, limit, W.shape).astype(_FLOAT)
        return flat

    def _split(
        self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator
    ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
        n = X.shape[0]
        n_val = min(int(n * self.validation_split), n - 1)
        if n_val <= 0:
            return X, y, None, None
        # Training data often arrives grouped (e.g. by story), so a plain
        # tail slice would not be representative.
        order = rng.permutation(n)
        train, val = order[:-n_val], order[-n_val:]
        return X[train], y[train], X[val], y[val]

    def _logits(self, X: np.ndarray) -> np.ndarray:
        h = X
        for W, b in self._hidden_layers:
            h = h @ W
            h += b
            np.maximum(h, 0.0, out=h)
        W, b = self._output_layer
        z = h @ W
        z += b
        return z

    def _train(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: Optional[np.ndarray],
        y_val: Optional[np.ndarray],
        rng: np.random.Generator,
        progress: Optional[ProgressCallback],
    ) -> None:
        n = X.shape[0]
        sizes = self._layer_sizes()
        params = self._params
        batch_size = min(self.batch_size, n)
        use_dropout = self.dropout > 0.0

        grads = np.zeros_like(params)
        grad_layers = _layer_views(grads, sizes)
        adam_m = np.zeros_like(params)
        adam_v = np.zeros_like(params)
        scratch = np.empty_like(params)
        decay = None
        if self.l2 > 0.0:
            decay = np.zeros_like(params)
            for W, _ in _layer_views(decay, sizes):
                W[...] = self.l2

        workspaces = {batch_size: _Workspace(batch_size, sizes, use_dropout)}
        if n % batch_size:
            workspaces[n % batch_size] = _Workspace(n % batch_size, sizes, use_dropout)

        # Per-example statistics for the current epoch, reduced once at the
        # end of the epoch rather than once per batch.
        true_logit = np.empty(n, dtype=_FLOAT)
        log_normaliser = np.empty(n, dtype=_FLOAT)

        drop = _FLOAT(self.dropout)
        inv_keep = _FLOAT(1.0 / (1.0 - self.dropout))
        lr = self.learning_rate
        one_minus_b1 = _FLOAT(1.0 - _BETA1)
        one_minus_b2 = _FLOAT(1.0 - _BETA2)
        hidden = self._hidden_layers
        out_W, out_b = self._output_layer
        grad_out_W, grad_out_b = grad_layers[-1]

        best_loss = np.inf
        epochs_without_improvement = 0
        step = 0

        for epoch in range(1, self.epochs + 1):
            order = rng.permutation(n)
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                ws = workspaces[idx.shape[0]]
                xb = np.take(X, idx, axis=0, out=ws.x)
                yb = y[idx]

                # Forward pass.
                h = xb
                for li, (W, b) in enumerate(hidden):
                    a = ws.activations[li]
                    np.matmul(h, W, out=a)
                    a += b
                    np.maximum(a, 0.0, out=a)
                    if use_dropout:
                        mask = ws.masks[li]
                        rng.random(out=mask, dtype=_FLOAT)
                        np.greater_equal(mask, drop, out=ws.active[li])
                        np.multiply(ws.active[li], inv_keep, out=mask)
                        a *= mask
                    np.greater(a, 0.0, out=ws.active[li])
                    h = a
                z = ws.logits
                np.matmul(h, out_W, out=z)
                z += out_b
                np.max(z, axis=1, keepdims=True, out=ws.row_max)
                z -= ws.row_max
                rows = ws.rows
                # After shifting, the true class's logit is 0 exactly when it
                # is the (joint) largest, and cross-entropy is
                # log(sum(exp(z))) - z[true]; storing both avoids log(0).
                true_logit[start:start + rows.shape[0]] = z[rows, yb]
                np.exp(z, out=z)
                np.sum(z, axis=1, keepdims=True, out=ws.row_sum)
                z /= ws.row_sum
                log_normaliser[start:start + rows.shape[0]] = ws.row_sum[:, 0]

                # Backward pass: d(mean loss)/d(logits) = (p - onehot) / batch.
                delta = z
                delta[rows, yb] -= 1.0
                delta *= _FLOAT(1.0 / rows.shape[0])
                np.matmul(h.T, delta, out=grad_out_W)
                np.sum(delta, axis=0, out=grad_out_b)
                next_W = out_W
                for li in range(len(hidden) - 1, -1, -1):
                    d = ws.deltas[li]
                    np.matmul(delta, next_W.T, out=d)
                    # ReLU passes gradient only where the unit was active;
                    # dropped units are inactive, surviving ones were scaled.
                    np.multiply(d, ws.active[li], out=d)
                    if use_dropout:
                        d *= ws.masks[li]
                    prev = ws.activations[li - 1] if li > 0 else xb
                    gW, gb = grad_layers[li]
                    np.matmul(prev.T, d, out=gW)
                    np.sum(d, axis=0, out=gb)
                    delta = d
                    next_W = hidden[li][0]

                if decay is not None:
                    np.multiply(decay, params, out=scratch)
                    grads += scratch

                # Adam, with bias correction folded into the step size.
                step += 1
                lr_t = _FLOAT(
                    lr * np.sqrt(1.0 - _BETA2 ** step) / (1.0 - _BETA1 ** step)
                )
                np.subtract(grads, adam_m, out=scratch)
                scratch *= one_minus_b1
                adam_m += scratch
                np.multiply(grads, grads, out=scratch)
                scratch -= adam_v
                scratch *= one_minus_b2
                adam_v += scratch
                np.sqrt(adam_v, out=scratch)
                scratch += _FLOAT(_EPSILON)
                np.divide(adam_m, scratch, out=scratch)
                scratch *= lr_t
                params -= scratch

            loss = float(
                np.mean(np.log(log_normaliser.astype(np.float64)) - true_logit)
            )
            accuracy = float(np.count_nonzero(true_logit == 0.0)) / n
            record: Dict[str, float] = {"epoch": epoch, "loss": loss, "accuracy": accuracy}
            if X_val is not None:
                predicted = np.argmax(self._logits(X_val), axis=1)
                record["val_accuracy"] = float(np.mean(predicted == y_val))
            self.history.append(record)
            if progress is not None:
                progress(epoch, self.epochs, loss, accuracy)

            if accuracy == 1.0 and loss < _CONVERGED_LOSS:
                break
            if loss < best_loss - _MIN_LOSS_DELTA:
                best_loss = loss
                epochs_without_improvement = 0
            else:
                epochs_without_improvement += 1
                if epochs_without_improvement >= self.patience:
                    break


def _num_params(sizes: Sequence[int]) -> int:
    return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def _layer_views(flat: np.ndarray, sizes: Sequence[int]) -> List[Tuple[np.ndarray, np.ndarray]]:
    views = []
    offset = 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        W = flat[offset:offset + n_in * n_out].reshape(n_in, n_out)
        offset += n_in * n_out
        b = flat[offset:offset + n_out]
        offset += n_out
        views.append((W, b))
    return views


def _softmax_rows(z: np.ndarray) -> None:
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
