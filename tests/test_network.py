"""Tests for the numpy feed-forward classifier behind the dialogue policy."""

import os

import numpy as np
import pytest

from coreactors.policies.network import FeedForwardClassifier


def xor_data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, size=(n, 2))
    # Keep points away from the axes so the classes have a margin.
    X += np.sign(X) * 0.1
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(int)
    return X, y


def blobs(n_per_class=60, num_classes=5, dim=20, seed=1):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, size=(num_classes, dim))
    X = np.concatenate([c + rng.normal(0.0, 0.5, size=(n_per_class, dim)) for c in centres])
    y = np.repeat(np.arange(num_classes), n_per_class)
    # Mimic the featurizer's padding value on a few constant columns.
    X[:, :3] = -1.0
    return X, y


def accuracy(model, X, y):
    return float(np.mean(np.argmax(model.predict_proba(X), axis=1) == y))


@pytest.fixture(scope="module")
def trained():
    X, y = blobs()
    model = FeedForwardClassifier(hidden_sizes=(16,), epochs=30, random_seed=3)
    model.fit(X, y, num_classes=5)
    return model, X, y


def test_learns_xor():
    X, y = xor_data()
    model = FeedForwardClassifier(hidden_sizes=(16,), epochs=300, batch_size=16,
                                  learning_rate=0.01, patience=300)
    model.fit(X, y, num_classes=2)
    assert model.is_trained
    assert accuracy(model, X, y) > 0.95
    X_test, y_test = xor_data(seed=7)
    assert accuracy(model, X_test, y_test) > 0.95


def test_learns_linearly_separable_five_classes():
    X, y = blobs()
    model = FeedForwardClassifier(hidden_sizes=(32,), epochs=50)
    model.fit(X, y, num_classes=5)
    assert accuracy(model, X, y) > 0.95
    X_test, y_test = blobs(n_per_class=20, seed=1)
    assert accuracy(model, X_test, y_test) > 0.95


def test_two_hidden_layers_with_dropout_and_l2_still_learn():
    X, y = blobs()
    model = FeedForwardClassifier(hidden_sizes=(32, 16), epochs=60, dropout=0.2, l2=1e-4)
    model.fit(X, y, num_classes=5)
    assert accuracy(model, X, y) > 0.95


def reference_loss(arrays, X, y):
    """Mean cross-entropy computed independently, in float64."""
    n_layers = len([k for k in arrays if k.startswith("W")])
    h = X
    for i in range(n_layers):
        h = h @ arrays[f"W{i}"] + arrays[f"b{i}"]
        if i < n_layers - 1:
            h = np.maximum(h, 0.0)
    h = h - h.max(axis=1, keepdims=True)
    log_probs = h - np.log(np.exp(h).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(y)), y].mean()


def test_first_update_follows_the_true_gradient():
    # Adam's very first step is -learning_rate * sign(gradient) for every
    # parameter, so one full-batch epoch exposes the sign of the gradient the
    # network computed; compare it with finite differences.
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 6))
    X[:, 0] = -1.0
    y = rng.integers(0, 3, size=40)
    kwargs = dict(hidden_sizes=(8, 5), epochs=1, batch_size=40, random_seed=9)
    # A step far below float32 resolution leaves the initial weights intact.
    initial = FeedForwardClassifier(learning_rate=1e-30, **kwargs).fit(X, y, 3).to_arrays()
    stepped = FeedForwardClassifier(learning_rate=1e-3, **kwargs).fit(X, y, 3).to_arrays()

    weights = {k: v.astype(np.float64) for k, v in initial.items() if k != "config"}
    checked = 0
    for name, value in weights.items():
        observed_sign = np.sign(initial[name] - stepped[name])
        for index in np.ndindex(value.shape):
            original = value[index]
            value[index] = original + 1e-5
            upper = reference_loss(weights, X, y)
            value[index] = original - 1e-5
            lower = reference_loss(weights, X, y)
            value[index] = original
            numeric = (upper - lower) / 2e-5
            if abs(numeric) > 1e-4:
                assert observed_sign[index] == np.sign(numeric), (name, index)
                checked += 1
            elif abs(numeric) < 1e-9:
                assert observed_sign[index] == 0, (name, index)
    assert checked > 50


def test_l2_shrinks_weights():
    X, y = blobs()
    plain = FeedForwardClassifier(epochs=20, patience=20).fit(X, y, 5).to_arrays()
    decayed = FeedForwardClassifier(epochs=20, patience=20, l2=0.2).fit(X, y, 5).to_arrays()
    for name in ("W0", "W1"):
        assert np.sum(decayed[name] ** 2) < 0.5 * np.sum(plain[name] ** 2)


def test_dropout_changes_training_but_not_prediction():
    X, y = blobs()
    plain = FeedForwardClassifier(epochs=3, patience=3).fit(X, y, 5)
    dropped = FeedForwardClassifier(epochs=3, patience=3, dropout=0.5).fit(X, y, 5)
    assert not np.array_equal(plain.to_arrays()["W0"], dropped.to_arrays()["W0"])
    # Dropout is a training-time device only: inference is deterministic.
    assert np.array_equal(dropped.predict_proba(X), dropped.predict_proba(X))


def test_predict_proba_rows_are_distributions(trained):
    model, X, _ = trained
    probs = model.predict_proba(X)
    assert probs.shape == (X.shape[0], 5)
    assert probs.dtype == np.float32
    assert np.all(probs >= 0.0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kwargs", [
    {},
    {"dropout": 0.3, "l2": 1e-3, "validation_split": 0.2, "hidden_sizes": (16, 8)},
])
def test_training_is_deterministic(kwargs):
    X, y = blobs()
    first = FeedForwardClassifier(epochs=5, random_seed=11, **kwargs).fit(X, y, 5)
    second = FeedForwardClassifier(epochs=5, random_seed=11, **kwargs).fit(X, y, 5)
    a, b = first.to_arrays(), second.to_arrays()
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    assert np.array_equal(first.predict_proba(X), second.predict_proba(X))
    assert first.history == second.history

    # Refitting the same instance starts again from the same seed.
    first.fit(X, y, 5)
    for name, value in first.to_arrays().items():
        assert np.array_equal(value, a[name]), name

    # The seed really matters, so the equalities above are not vacuous.
    other = FeedForwardClassifier(epochs=5, random_seed=12, **kwargs).fit(X, y, 5)
    assert not np.array_equal(other.to_arrays()["W0"], a["W0"])


def test_training_does_not_touch_global_random_state():
    X, y = blobs()
    np.random.seed(123)
    expected = np.random.random(3)
    np.random.seed(123)
    FeedForwardClassifier(epochs=2, dropout=0.5, validation_split=0.1).fit(X, y, 5)
    assert np.array_equal(np.random.random(3), expected)


@pytest.mark.parametrize("filename", ["model.npz", "model.bin"])
def test_save_load_round_trip(trained, tmp_path, filename):
    model, X, _ = trained
    path = str(tmp_path / filename)
    model.save(path)
    assert os.listdir(tmp_path) == [filename]

    loaded = FeedForwardClassifier.load(path)
    assert loaded.is_trained
    assert loaded.get_config() == model.get_config()
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    for row in X[:10]:
        assert np.array_equal(loaded.predict_one(row), model.predict_one(row))


def test_saved_file_loads_without_pickle(trained, tmp_path):
    model, _, _ = trained
    path = str(tmp_path / "model.npz")
    model.save(path)
    with np.load(path, allow_pickle=False) as data:
        assert "config" in data.files
        assert all(data[name].dtype != object for name in data.files)


def test_from_arrays_round_trip(trained):
    model, X, _ = trained
    copy = FeedForwardClassifier.from_arrays(model.to_arrays())
    assert np.array_equal(copy.predict_proba(X), model.predict_proba(X))


def test_to_arrays_returns_copies(trained):
    model, X, _ = trained
    before = model.predict_proba(X[:5])
    arrays = model.to_arrays()
    arrays["W0"][...] = 0.0
    assert np.array_equal(model.predict_proba(X[:5]), before)


def test_predict_one_matches_predict_proba(trained):
    model, X, _ = trained
    probs = model.predict_proba(X)
    for i in range(0, X.shape[0], 7):
        one = model.predict_one(X[i])
        assert one.shape == (5,)
        np.testing.assert_allclose(one, probs[i], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(model.predict_one(X[i].astype(np.float32)), probs[i],
                                   rtol=1e-5, atol=1e-7)


def test_predict_one_results_are_independent(trained):
    model, X, _ = trained
    first = model.predict_one(X[0])
    kept = first.copy()
    model.predict_one(X[-1])
    assert np.array_equal(first, kept)


def test_untrained_model_predicts_uniform():
    model = FeedForwardClassifier()
    model.fit(np.zeros((0, 6)), np.zeros(0, dtype=int), num_classes=4)
    assert not model.is_trained
    assert model.history == []
    np.testing.assert_allclose(model.predict_proba(np.ones((3, 6))), np.full((3, 4), 0.25))
    np.testing.assert_allclose(model.predict_one(np.ones(6)), np.full(4, 0.25))


def test_untrained_model_survives_save_load(tmp_path):
    model = FeedForwardClassifier().fit(np.zeros((0, 6)), np.zeros(0, dtype=int), 4)
    path = str(tmp_path / "empty.npz")
    model.save(path)
    loaded = FeedForwardClassifier.load(path)
    assert not loaded.is_trained
    np.testing.assert_allclose(loaded.predict_one(np.ones(6)), np.full(4, 0.25))


def test_never_fitted_model_cannot_know_its_classes():
    with pytest.raises(RuntimeError):
        FeedForwardClassifier().predict_proba(np.ones((1, 3)))


def test_progress_called_once_per_epoch():
    X, y = blobs()
    calls = []
    model = FeedForwardClassifier(epochs=7, patience=7)
    model.fit(X, y, 5, progress=lambda *args: calls.append(args))
    assert [c[0] for c in calls] == list(range(1, len(calls) + 1))
    assert len(calls) == len(model.history) >= 1
    assert all(c[1] == 7 for c in calls)
    for (_, _, loss, acc), record in zip(calls, model.history):
        assert loss == record["loss"]
        assert acc == record["accuracy"]
        assert 0.0 <= acc <= 1.0


def test_early_stopping_on_easy_problem():
    X, y = blobs()
    # patience == epochs, so only the "fitted perfectly" criterion can stop it.
    model = FeedForwardClassifier(hidden_sizes=(32,), epochs=500, patience=500)
    model.fit(X, y, 5)
    assert len(model.history) < 500
    last = model.history[-1]
    assert last["accuracy"] == 1.0 and last["loss"] < 0.01


def test_early_stopping_when_loss_plateaus():
    # Identical inputs with random labels: the loss cannot keep improving.
    rng = np.random.default_rng(0)
    X = np.ones((200, 4))
    y = rng.integers(0, 3, size=200)
    model = FeedForwardClassifier(epochs=500, patience=5)
    model.fit(X, y, 3)
    assert len(model.history) < 500
    assert model.history[-1]["accuracy"] < 1.0


def test_patience_equal_to_epochs_runs_every_epoch():
    rng = np.random.default_rng(0)
    X = np.ones((200, 4))
    y = rng.integers(0, 3, size=200)
    model = FeedForwardClassifier(epochs=40, patience=40)
    model.fit(X, y, 3)
    assert len(model.history) == 40


def test_validation_split_records_val_accuracy():
    X, y = blobs()
    model = FeedForwardClassifier(epochs=5, validation_split=0.25, patience=5)
    model.fit(X, y, 5)
    assert all(0.0 <= r["val_accuracy"] <= 1.0 for r in model.history)
    assert model.history[-1]["val_accuracy"] > 0.9

    no_split = FeedForwardClassifier(epochs=2).fit(X, y, 5)
    assert all("val_accuracy" not in r for r in no_split.history)


def test_single_class():
    X = np.random.default_rng(0).normal(size=(20, 3))
    model = FeedForwardClassifier(epochs=5).fit(X, np.zeros(20, dtype=int), 1)
    assert model.is_trained
    np.testing.assert_allclose(model.predict_proba(X), 1.0)
    np.testing.assert_allclose(model.predict_one(X[0]), [1.0])


def test_more_classes_than_labels_seen():
    X, y = blobs()
    model = FeedForwardClassifier(hidden_sizes=(32,), epochs=50).fit(X, y, num_classes=8)
    probs = model.predict_proba(X)
    assert probs.shape == (X.shape[0], 8)
    assert accuracy(model, X, y) > 0.95
    assert probs[:, 5:].max() < 0.05


def test_rejects_bad_labels():
    X = np.zeros((3, 2))
    with pytest.raises(ValueError):
        FeedForwardClassifier().fit(X, np.array([0, 1, 3]), num_classes=3)
    with pytest.raises(ValueError):
        FeedForwardClassifier().fit(X, np.array([0, -1, 1]), num_classes=3)
    with pytest.raises(ValueError):
        FeedForwardClassifier().fit(X, np.array([0, 1]), num_classes=3)
