"""Tests for the scikit-learn MLP and the Keras ANN / 1D-CNN trainers on synthetic speakers."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ["KERAS_BACKEND"] = "torch"
os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="ser-keras-home-"))

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import balanced_accuracy_score
from synthetic_features import speaker_blobs

from experiments.families.base import Trainer, predict_labels
from experiments.families.inputs import make_cv_splits, select_features, validation_split
from experiments.families.keras_nets import (
    KerasANNTrainer,
    KerasCNNTrainer,
    KerasTrainerBase,
)
from experiments.families.sklearn_mlp import SklearnMLPTrainer
from ser_features.augmentation import AUGMENTATIONS

#: Given in a non-canonical order on purpose.
LABELS = ["sad", "happy", "angry", "neutral"]
CANONICAL = ["neutral", "happy", "sad", "angry"]
TEST_SPEAKERS = ["spk6", "spk7"]
SMALL_GRID = {"hidden_layer_sizes": [(32,)], "alpha": [1e-4, 1e-2]}
FAST_KERAS = {"epochs": 60, "batch_size": 16, "patience": 8}


@pytest.fixture(scope="module")
def data() -> dict[str, object]:
    features, labels, groups = speaker_blobs(
        LABELS, n_speakers=8, per_class=10, n_features=30, offset_scale=0.5
    )
    train = ~np.isin(groups, TEST_SPEAKERS)
    return {
        "x_train": features[train].reset_index(drop=True),
        "y_train": labels[train],
        "g_train": groups[train],
        "x_test": features[~train].reset_index(drop=True),
        "y_test": labels[~train],
    }


def held_out_accuracy(trainer: Trainer, data: dict) -> float:
    return balanced_accuracy_score(data["y_test"], predict_labels(trainer, data["x_test"]))


def check_probabilities(trainer: Trainer, data: dict) -> np.ndarray:
    assert isinstance(trainer, Trainer)
    proba = trainer.predict_proba(data["x_test"])
    assert proba.dtype == np.float64
    assert proba.shape == (len(data["x_test"]), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert trainer.classes_ == CANONICAL
    # Column k is the probability of classes_[k]: the argmax agrees with the true label.
    true_index = np.array([CANONICAL.index(label) for label in data["y_test"]])
    assert np.mean(proba.argmax(axis=1) == true_index) > 0.6
    return proba


def assert_no_overlap(splits, groups: np.ndarray) -> None:
    for train_idx, test_idx in splits:
        assert set(groups[train_idx]).isdisjoint(groups[test_idx])


@pytest.fixture(scope="module")
def mlp(data) -> SklearnMLPTrainer:
    trainer = SklearnMLPTrainer(param_grid=SMALL_GRID, n_jobs=1, seed=3)
    assert trainer.fit(data["x_train"], data["y_train"], data["g_train"]) is trainer
    return trainer


@pytest.fixture(scope="module")
def ann(data) -> KerasANNTrainer:
    trainer = KerasANNTrainer(**FAST_KERAS, seed=1)
    assert trainer.fit(data["x_train"], data["y_train"], data["g_train"]) is trainer
    return trainer


# --- shared helpers -------------------------------------------------------------------------
def test_cv_splits_keep_speakers_apart(data) -> None:
    name, splits = make_cv_splits(data["y_train"], data["g_train"], n_folds=3, seed=0)
    assert name == "StratifiedGroupKFold"
    assert len(splits) == 3
    assert_no_overlap(splits, data["g_train"])
    covered = np.concatenate([test for _, test in splits])
    assert sorted(covered) == list(range(len(data["y_train"])))


def test_cv_splits_capped_by_speakers_and_fallback_without_groups(data) -> None:
    two = np.where(np.arange(len(data["g_train"])) % 2 == 0, "a", "b")
    _, splits = make_cv_splits(data["y_train"], two, n_folds=5)
    assert len(splits) == 2
    assert_no_overlap(splits, two)
    name, splits = make_cv_splits(data["y_train"], None, n_folds=4)
    assert name == "StratifiedKFold" and len(splits) == 4


def test_validation_split_by_speaker_or_stratified(data) -> None:
    y, g = data["y_train"], data["g_train"]
    fit_idx, val_idx, strategy = validation_split(y, g, fraction=0.15, seed=0)
    assert strategy == "group"
    assert set(g[fit_idx]).isdisjoint(g[val_idx]) and len(val_idx) > 0
    fit_idx, val_idx, strategy = validation_split(y, None, fraction=0.15, seed=0)
    assert strategy == "stratified"
    assert set(y[val_idx]) == set(LABELS)
    assert len(set(fit_idx) | set(val_idx)) == len(y)


def test_select_features_names_missing_and_non_numeric_columns(data) -> None:
    frame = data["x_test"]
    with pytest.raises(ValueError, match=r"missing: f03, f07"):
        select_features(frame.drop(columns=["f03", "f07"]), list(frame.columns))
    with pytest.raises(ValueError, match=r"non-numeric.*speaker"):
        select_features(frame.assign(speaker="x"))
    shuffled = frame[frame.columns[::-1]].assign(extra=1.0)
    assert list(select_features(shuffled, list(frame.columns)).columns) == list(frame.columns)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (SklearnMLPTrainer, {"param_grid": SMALL_GRID, "cv_folds": 4, "seed": 7, "n_jobs": 1}),
        (KerasANNTrainer, {"hidden_units": (8, 4), "dropout": 0.1, "epochs": 3, "seed": 7}),
        (KerasCNNTrainer, {"filters": (4,), "pooling": "global_average", "patience": 2}),
    ],
)
def test_init_only_stores_hyperparameters(cls, kwargs) -> None:
    trainer = cls(**kwargs)
    assert set(vars(trainer)) == set(trainer.get_params())
    assert {k: trainer.get_params()[k] for k in kwargs} == kwargs
    cloned = clone(trainer)
    assert cloned.get_params() == trainer.get_params()
    assert trainer.family in {"sklearn_mlp", "keras_ann", "keras_cnn"}
    with pytest.raises(TypeError):
        cls(1)  # hyperparameters are keyword-only


# --- scikit-learn MLP -----------------------------------------------------------------------
def test_mlp_learns_across_speakers(mlp, data) -> None:
    check_probabilities(mlp, data)
    assert held_out_accuracy(mlp, data) > 0.6
    assert mlp.feature_names_ == list(data["x_train"].columns)
    assert list(mlp.pipeline_.named_steps) == ["scaler", "mlp"]
    assert set(mlp.best_params_) == set(SMALL_GRID)
    assert 0.0 <= mlp.cv_results_["best_mean_balanced_accuracy"] <= 1.0
    assert mlp.cv_results_["n_candidates"] == 2


def test_mlp_grid_search_used_speaker_folds(mlp, data) -> None:
    assert mlp.cv_splitter_ == "StratifiedGroupKFold"
    assert len(mlp.cv_splits_) == 3
    assert_no_overlap(mlp.cv_splits_, data["g_train"])


def test_mlp_params_report_grid_seed_and_choice(mlp) -> None:
    params = mlp.params()
    assert params["seed"] == 3 and params["cv_folds"] == 3
    assert params["param_grid"] == SMALL_GRID
    assert params["best_alpha"] in SMALL_GRID["alpha"]
    assert params["cv_splitter"] == "StratifiedGroupKFold"


def test_mlp_is_deterministic_for_a_seed(mlp, data) -> None:
    again = clone(mlp).fit(data["x_train"], data["y_train"], data["g_train"])
    np.testing.assert_allclose(
        again.predict_proba(data["x_test"]), mlp.predict_proba(data["x_test"])
    )


def test_mlp_predict_checks_and_reorders_columns(mlp, data) -> None:
    frame = data["x_test"]
    with pytest.raises(ValueError, match="missing: f05"):
        mlp.predict_proba(frame.drop(columns=["f05"]))
    reordered = frame[frame.columns[::-1]]
    np.testing.assert_allclose(mlp.predict_proba(reordered), mlp.predict_proba(frame))


def test_mlp_without_groups_uses_stratified_folds(data) -> None:
    trainer = SklearnMLPTrainer(param_grid={"hidden_layer_sizes": [(16,)]}, cv_folds=2, n_jobs=1)
    trainer.fit(data["x_train"], data["y_train"])
    assert trainer.cv_splitter_ == "StratifiedKFold"
    check_probabilities(trainer, data)


def test_unfitted_and_single_class_errors(data) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        SklearnMLPTrainer().predict_proba(data["x_test"])
    with pytest.raises(RuntimeError, match="not fitted"):
        KerasANNTrainer().predict_proba(data["x_test"])
    one_class = np.full(len(data["x_train"]), "sad")
    with pytest.raises(ValueError, match="two distinct labels"):
        SklearnMLPTrainer().fit(data["x_train"], one_class)


@pytest.mark.slow
def test_mlp_default_grid_in_parallel(data) -> None:
    trainer = SklearnMLPTrainer(max_iter=100).fit(data["x_train"], data["y_train"], data["g_train"])
    assert trainer.cv_results_["n_candidates"] == 8
    assert held_out_accuracy(trainer, data) > 0.6


# --- Keras ANN and CNN ----------------------------------------------------------------------
@pytest.mark.slow
def test_ann_learns_across_speakers(ann, data) -> None:
    check_probabilities(ann, data)
    assert held_out_accuracy(ann, data) > 0.6
    assert ann.validation_strategy_ == "group"
    assert 1 <= ann.epochs_trained_ <= FAST_KERAS["epochs"]
    assert len(ann.history_["val_loss"]) == ann.epochs_trained_
    assert [layer.units for layer in ann.model_.layers if hasattr(layer, "units")] == [
        300,
        50,
        20,
        10,
        4,
    ]
    assert ann.params()["epochs_trained"] == ann.epochs_trained_


@pytest.mark.slow
def test_ann_is_deterministic_and_leaves_torch_threads(ann, data) -> None:
    threads = torch.get_num_threads()
    again = clone(ann).fit(data["x_train"], data["y_train"], data["g_train"])
    assert torch.get_num_threads() == threads
    assert again.epochs_trained_ == ann.epochs_trained_
    np.testing.assert_allclose(
        again.predict_proba(data["x_test"]), ann.predict_proba(data["x_test"]), atol=1e-6
    )


#: Run in a fresh interpreter: in a test session, background threads (HTTP clients' retry
#: jitter, servers started by other tests) may draw from Python's global generator at any time.
GLOBAL_GENERATORS_CHECK = """
import os, random, sys
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np, torch
from synthetic_features import speaker_blobs
from experiments.families.keras_nets import KerasCNNTrainer
from ser_features.audio import Clip
from ser_features.augmentation import AUGMENTATIONS, augment_clip, get_augmentation

def states():
    return random.getstate(), np.random.get_state(), torch.random.get_rng_state()

features, labels, groups = speaker_blobs(["a", "b"], n_speakers=4, per_class=8, n_features=12)
tone = np.sin(2 * np.pi * 220 * np.arange(16_000) / 16_000).astype(np.float32) * 0.3
clip = Clip(samples=tone, sample_rate=16_000, original_sample_rate=16_000, original_channels=1)
random.seed(11)
np.random.seed(11)
torch.manual_seed(11)
for name in ["keras fit", *sorted(AUGMENTATIONS)]:
    before = states()
    if name == "keras fit":
        KerasCNNTrainer(filters=(4,), dense_units=8, epochs=2, seed=5).fit(features, labels, groups)
    else:
        augment_clip(clip, get_augmentation(name), digest="c" * 32)
    after = states()
    moved = [kind for kind, a, b in zip(("random", "numpy.random", "torch"), before, after)
             if not (torch.equal(a, b) if kind == "torch" else
                     all(np.array_equal(x, y) for x, y in zip(a, b)) if kind == "numpy.random"
                     else a == b)]
    print(name, ",".join(moved) or "-")
"""


def test_keras_fit_and_augmentation_leave_the_global_generators() -> None:
    result = subprocess.run(
        [sys.executable, "-c", GLOBAL_GENERATORS_CHECK],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.rsplit(" ", 1) for line in result.stdout.strip().splitlines())
    assert set(lines) == {"keras fit", *AUGMENTATIONS}
    moved = {name: generators for name, generators in lines.items() if generators != "-"}
    assert not moved, f"global generators moved by: {moved}"


@pytest.mark.slow
def test_ann_save_load_round_trip(ann, data, tmp_path) -> None:
    ann.save(tmp_path / "ann")
    assert (tmp_path / "ann" / "model.keras").is_file()
    loaded = KerasTrainerBase.load(tmp_path / "ann")
    assert type(loaded) is KerasANNTrainer
    assert loaded.get_params() == ann.get_params()
    assert loaded.classes_ == ann.classes_ and loaded.feature_names_ == ann.feature_names_
    np.testing.assert_allclose(
        loaded.predict_proba(data["x_test"]), ann.predict_proba(data["x_test"]), atol=1e-6
    )
    with pytest.raises(ValueError, match="keras_ann"):
        KerasCNNTrainer.load(tmp_path / "ann")


@pytest.mark.slow
def test_ann_missing_column_at_predict(ann, data) -> None:
    with pytest.raises(ValueError, match="missing: f00"):
        ann.predict_proba(data["x_test"].drop(columns=["f00"]))


@pytest.mark.slow
def test_cnn_learns_and_round_trips(data, tmp_path) -> None:
    cnn = KerasCNNTrainer(**FAST_KERAS, seed=0)
    assert cnn.fit(data["x_train"], data["y_train"], data["g_train"]) is cnn
    proba = check_probabilities(cnn, data)
    assert held_out_accuracy(cnn, data) > 0.6
    assert cnn.model_.input_shape == (None, 30, 1)
    loaded = KerasCNNTrainer.load(cnn.save(tmp_path / "cnn"))
    np.testing.assert_allclose(loaded.predict_proba(data["x_test"]), proba, atol=1e-6)


@pytest.mark.slow
def test_keras_without_groups_and_unweighted(data) -> None:
    trainer = KerasANNTrainer(hidden_units=(32, 16), epochs=30, class_weight=None)
    trainer.fit(data["x_train"], data["y_train"])
    assert trainer.validation_strategy_ == "stratified"
    check_probabilities(trainer, data)
