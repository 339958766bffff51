"""H2O AutoML trainer and cluster helper, against a real local JVM (started once per module)."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest

h2o = pytest.importorskip("h2o")

from synthetic_features import speaker_blobs  # noqa: E402

from experiments.engines import h2o_cluster  # noqa: E402
from experiments.engines.h2o_cluster import H2OUnavailableError, connect_h2o, java_available  # noqa: E402
from experiments.families.base import Trainer, predict_labels  # noqa: E402
from experiments.families.h2o_trainer import (  # noqa: E402
    FOLD_COLUMN,
    H2OAutoMLTrainer,
    _probability_columns,
    speaker_folds,
)
from ser_features.labels import ordered_labels  # noqa: E402

pytestmark = pytest.mark.slow

#: Deliberately not in canonical order (canonical: neutral, happy, sad, angry).
LABELS = ["sad", "angry", "neutral", "happy"]
TRAIN_SPEAKERS = [f"spk{i}" for i in range(6)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not java_available():
        pytest.skip("java not found (apt-get install openjdk-17-jre-headless) - H2O needs a JVM")
    connect_h2o(max_mem_size="2G", port=_free_port(), ice_root=tmp_path_factory.mktemp("h2o_ice"))
    yield h2o.connection().base_url
    h2o_cluster.shutdown_h2o()


@pytest.fixture(scope="module")
def data():
    return speaker_blobs(LABELS, n_speakers=8, per_class=12, n_features=20)


@pytest.fixture(scope="module")
def fitted(cluster, data):
    features, labels, speakers = data
    train = np.isin(speakers, TRAIN_SPEAKERS)
    trainer = H2OAutoMLTrainer(
        max_runtime_secs=60,  # max_models binds first; the budget only guards a loaded machine
        max_models=2,
        nfolds=3,
        seed=1,
        exclude_algos=["DeepLearning", "StackedEnsemble"],
        max_mem_size="2G",
    )
    returned = trainer.fit(features[train], labels[train], speakers[train])
    assert returned is trainer
    return trainer


# --- pure helpers (no JVM) -------------------------------------------------------------------


def test_speaker_folds_put_each_speaker_in_one_fold():
    groups = np.array(["b"] * 5 + ["a"] * 3 + ["c"] * 4 + ["d"] * 4 + ["e"] * 2)
    folds = speaker_folds(groups, 3)
    assert folds.shape == groups.shape
    assert set(folds) == {0, 1, 2}
    for speaker in set(groups):
        assert len(set(folds[groups == speaker])) == 1
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 2  # greedy balancing: 6/6/6 here
    np.testing.assert_array_equal(folds, speaker_folds(groups, 3))  # deterministic


def test_speaker_folds_reduce_to_number_of_speakers():
    groups = np.array(["x", "y", "x", "y", "x"])
    assert set(speaker_folds(groups, 5)) == {0, 1}
    with pytest.raises(ValueError):
        speaker_folds(np.array(["only"] * 4), 5)


def test_probability_columns_handle_numeric_levels():
    assert _probability_columns(["p1", "angry"], ["1", "angry"]) == {"1": "p1", "angry": "angry"}
    with pytest.raises(RuntimeError):
        _probability_columns(["sad", "angry"], ["angry", "sad"])


def test_missing_java_gives_install_hint(monkeypatch):
    monkeypatch.delenv("SER_H2O_URL", raising=False)
    monkeypatch.setattr(h2o_cluster, "_current_url", lambda: None)
    monkeypatch.setattr(h2o_cluster, "java_available", lambda: False)
    with pytest.raises(H2OUnavailableError, match="openjdk-17-jre-headless"):
        connect_h2o()


def test_unfitted_params_and_protocol():
    trainer = H2OAutoMLTrainer()
    assert trainer.family == "h2o_automl"
    assert trainer.params()["exclude_algos"] == "DeepLearning"
    assert H2OAutoMLTrainer(exclude_algos=[]).params()["exclude_algos"] == "none"


# --- against the JVM -------------------------------------------------------------------------


def test_connect_is_idempotent(cluster):
    connect_h2o()
    assert h2o.connection().base_url == cluster


def test_fit_keeps_leader_and_whole_leaderboard(fitted):
    assert isinstance(fitted, Trainer)
    board = fitted.leaderboard_
    assert isinstance(board, pd.DataFrame)
    assert len(board) >= 1
    assert {"model_id", "mean_per_class_error", "algo"} <= set(board.columns)
    assert fitted.leader_.model_id == board["model_id"].iloc[0]
    assert fitted.aml_project_
    params = fitted.params()
    assert params["fold_strategy"] == "speaker"
    assert params["n_folds_used"] == 3
    assert params["n_models"] == len(board)
    fold_column = fitted.leader_.params["fold_column"]["actual"]
    assert fold_column["column_name"] == FOLD_COLUMN  # AutoML's CV really was speaker-wise


def test_predict_proba_shape_order_and_skill(fitted, data):
    features, labels, speakers = data
    test = ~np.isin(speakers, TRAIN_SPEAKERS)
    assert fitted.classes_ == ordered_labels(set(LABELS)) == ["neutral", "happy", "sad", "angry"]
    proba = fitted.predict_proba(features[test])
    assert proba.shape == (test.sum(), 4)
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    accuracy = np.mean(predict_labels(fitted, features[test]) == labels[test])
    assert accuracy > 0.5  # chance is 0.25


def test_mojo_export_matches_in_cluster_scoring(fitted, data, tmp_path):
    features, _, speakers = data
    test = ~np.isin(speakers, TRAIN_SPEAKERS)
    assert fitted.mojo_supported()
    mojo = fitted.export_mojo(tmp_path / "mojo")
    assert mojo.suffix == ".zip" and mojo.is_file()
    assert fitted.genmodel_jar_path_.name == "h2o-genmodel.jar"
    assert fitted.genmodel_jar_path_.is_file()
    assert fitted.params()["mojo_fallback"] is False
    held_out = features[test].reset_index(drop=True)
    scored = h2o.mojo_predict_pandas(held_out, str(mojo), str(fitted.genmodel_jar_path_))
    from_mojo = scored[fitted.classes_].to_numpy(np.float64)
    from_mojo /= from_mojo.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(fitted.predict_proba(held_out), from_mojo, atol=1e-5)


def test_fit_frees_uploaded_frames(fitted, data):
    features, _, _ = data
    fitted.predict_proba(features.iloc[:5])
    frames = [f["frame_id"]["name"] for f in h2o.api("GET /3/Frames")["frames"]]
    ours = [f"{fitted.aml_project_}_train", f"{fitted.aml_project_}_score_"]
    assert not [name for name in frames if any(key in name for key in ours)]


def test_mojo_falls_back_to_next_exportable_model(fitted, tmp_path, monkeypatch):
    board = fitted.leaderboard_
    if len(board) < 2:
        pytest.skip("AutoML built a single model within the budget; nothing to fall back to")

    def refuse(**_):
        raise RuntimeError("simulated MOJO failure")

    monkeypatch.setattr(fitted.leader_, "download_mojo", refuse)
    mojo = fitted.export_mojo(tmp_path)
    assert mojo.is_file()
    params = fitted.params()
    assert params["mojo_fallback"] is True
    assert params["mojo_model_id"] == board["model_id"].iloc[1]
    assert "simulated MOJO failure" in fitted.mojo_failures_[0]


def test_no_model_is_one_error_naming_the_ways_out(cluster, data):
    features, labels, speakers = data
    train = np.isin(speakers, TRAIN_SPEAKERS)
    nothing_to_stack = H2OAutoMLTrainer(  # an ensemble with no base model: AutoML builds none
        max_runtime_secs=30, nfolds=3, modeling_plan=[["StackedEnsemble", ["best_of_family_1"]]]
    )
    with pytest.raises(RuntimeError) as raised:
        nothing_to_stack.fit(features[train], labels[train], speakers[train])
    message = str(raised.value)
    assert message.startswith("H2O AutoML built no model in its 30 s budget on")
    assert f"rows x {features.shape[1]} columns" in message
    assert "Raise max_runtime_secs, or set pca_components" in message
