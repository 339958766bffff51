"""H2O AutoML on real RAVDESS clips: speaker folds, several algorithms, the MOJO the model serves.

A real local JVM trains on the shipped feature set of 168 clips of six actors (four emotions),
through the trainer's default modeling plan and a principal-component projection, as the
shipped config does at a smaller scale.
"""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest

h2o = pytest.importorskip("h2o")

from experiments.engines import h2o_cluster  # noqa: E402
from experiments.engines.h2o_cluster import connect_h2o, java_available  # noqa: E402
from experiments.families.h2o_automl import PROJECTION_FILE, load_mojo, save_mojo  # noqa: E402
from experiments.families.h2o_trainer import FOLD_COLUMN, H2OAutoMLTrainer  # noqa: E402
from ser_features.audio import load_audio  # noqa: E402
from ser_features.corpora import parse_ravdess  # noqa: E402
from ser_features.feature_sets import get_feature_spec  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Converting H2O frame")]

FEATURE_SET = "spectral_prosodic_speech"
EMOTIONS = {"neutral", "happy", "sad", "angry"}
TRAIN_ACTORS = ["01", "02", "03", "04", "05", "06"]
TEST_ACTORS = ["07", "08"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def clips(shared_data) -> pd.DataFrame:
    """Features, emotion and speaker of the four-emotion clips of actors 01-08."""
    spec = get_feature_spec(FEATURE_SET)
    rows = []
    for actor in TRAIN_ACTORS + TEST_ACTORS:
        for path in sorted((shared_data / "ravdess" / f"Actor_{actor}").glob("*.flac")):
            labels = parse_ravdess(path)
            if labels is None or labels.emotion not in EMOTIONS:
                continue
            features = spec.describe(load_audio(path, options=spec.load))
            rows.append({**features, "emotion": labels.emotion, "speaker": labels.speaker})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def fitted(clips, tmp_path_factory):
    if not java_available():
        pytest.skip("java not found (apt-get install openjdk-17-jre-headless) - H2O needs a JVM")
    connect_h2o(max_mem_size="2G", port=_free_port(), ice_root=tmp_path_factory.mktemp("h2o_ice"))
    train = clips[clips["speaker"].str[-2:].isin(TRAIN_ACTORS)]
    trainer = H2OAutoMLTrainer(
        max_runtime_secs=240,  # max_models binds first; the budget only guards a loaded machine
        max_models=4,
        nfolds=3,
        seed=0,
        pca_components=24,
    )
    features = train.drop(columns=["emotion", "speaker"])
    trainer.fit(features, train["emotion"].to_numpy(), train["speaker"].to_numpy())
    yield trainer, train
    trainer.release()
    h2o_cluster.shutdown_h2o()


def test_speakers_never_share_a_fold(fitted):
    trainer, train = fitted
    board = trainer.leaderboard_
    base = h2o.get_model(board.loc[board["algo"] != "StackedEnsemble", "model_id"].iloc[0])
    assert base.params["fold_column"]["actual"]["column_name"] == FOLD_COLUMN
    scored = base.model_performance(xval=True)._metric_json["nobs"]
    assert scored == len(train)  # every training row scored by the fold that held it out
    assignment = pd.DataFrame({"speaker": train["speaker"].to_numpy(), "fold": trainer.folds_})
    per_speaker = assignment.groupby("speaker")["fold"].nunique()
    assert (per_speaker == 1).all(), per_speaker
    assert assignment["fold"].nunique() == 3


def test_leaderboard_has_several_algorithms_and_an_ensemble(fitted):
    trainer, _ = fitted
    board = trainer.leaderboard_
    algos = set(board["algo"])
    assert {"GLM", "GBM"} <= algos  # the plan's first steps: a GLM, then default GBMs
    assert "StackedEnsemble" in algos
    assert {"model_id", "mean_per_class_error", "training_time_ms"} <= set(board.columns)
    assert board["mean_per_class_error"].is_monotonic_increasing  # ranked by the sort metric
    params = trainer.params()
    assert params["modeling_plan"].startswith("GLM:def_1 GBM:def_5,def_1")
    assert params["pca_components"] == 24
    assert len(trainer.predictors_) == 24


def test_mojo_answers_like_the_in_cluster_leader(fitted, clips, tmp_path):
    trainer, _ = fitted
    test = clips[clips["speaker"].str[-2:].isin(TEST_ACTORS)]
    features = test.drop(columns=["emotion", "speaker"]).reset_index(drop=True)
    meta = save_mojo(trainer, tmp_path)
    meta["classes"] = trainer.classes_
    assert meta["projection"] == PROJECTION_FILE
    assert meta["mojo_model_id"] == trainer.leader_.model_id  # the leader itself, no fallback
    served = load_mojo(tmp_path, meta)
    in_cluster = trainer.predict_proba(features)
    from_mojo = served.predict_proba(features)
    np.testing.assert_allclose(from_mojo, in_cluster, atol=1e-5)
    classes = np.array(trainer.classes_)
    assert (classes[from_mojo.argmax(axis=1)] == classes[in_cluster.argmax(axis=1)]).all()
    uar = (
        pd.Series(classes[from_mojo.argmax(axis=1)] == test["emotion"].to_numpy())
        .groupby(test["emotion"].to_numpy())
        .mean()
    )
    assert uar.mean() > 0.4  # unseen actors, four emotions: chance is 0.25


def _uar(truth: np.ndarray, proba: np.ndarray, classes: list[str]) -> float:
    predicted = np.asarray(classes)[proba.argmax(axis=1)]
    return float(pd.Series(predicted == truth).groupby(truth).mean().mean())


def test_out_of_fold_probabilities_are_the_leaders_held_out_speakers(fitted):
    trainer, train = fitted
    oof = trainer.out_of_fold_proba()
    assert oof.shape == (len(train), len(trainer.classes_))
    np.testing.assert_allclose(oof.sum(axis=1), 1.0, atol=1e-9)
    truth = train["emotion"].to_numpy()
    held_out = _uar(truth, oof, trainer.classes_)
    # H2O's own cross-validated score of the leader is this very table of predictions
    board = trainer.leaderboard_.set_index("model_id")
    assert held_out == pytest.approx(
        1 - board.loc[trainer.leader_.model_id, "mean_per_class_error"], abs=1e-9
    )
    features = train.drop(columns=["emotion", "speaker"])
    seen = _uar(truth, trainer.predict_proba(features), trainer.classes_)
    assert seen - held_out > 0.1, (seen, held_out)  # the rows' own speakers were not seen


def test_fused_takes_the_automl_leader_on_its_own_speaker_folds(fitted, clips, tmp_path):
    from experiments.families.fused import FusedTrainer, load, member_tables, save

    _, train = fitted
    repeated = pd.concat([train, train.iloc[:12]], ignore_index=True)  # as balancing repeats
    fused = FusedTrainer(
        members={
            "sklearn_linear": {"param_grid": {"C": [0.01]}, "max_iter": 100},
            "h2o_automl": {
                "max_runtime_secs": 240,
                "max_models": 3,
                "nfolds": 3,
                "pca_components": 24,
            },
        },
        inner_folds=3,
    )
    features = repeated.drop(columns=["emotion", "speaker"])
    fused.fit(features, repeated["emotion"].to_numpy(), repeated["speaker"].to_numpy())
    try:
        params = fused.params()
        assert params["out_of_fold_source"] == {
            "h2o_automl": "its own folds",
            "sklearn_linear": "3 inner folds",
        }
        automl = fused.members_["h2o_automl"]
        oof = automl.out_of_fold_proba()
        assert len(oof) == len(repeated)
        np.testing.assert_array_equal(oof[-12:], oof[:12])  # a repeat gets its copy's answer
        assert sum(fused.weights_.values()) == pytest.approx(1.0)
        ((stem, board),) = member_tables(fused).items()  # logged beside the run
        assert stem == "h2o_automl_h2o_leaderboard" and board is automl.leaderboard_
        test = clips[clips["speaker"].str[-2:].isin(TEST_ACTORS)]
        unseen = test.drop(columns=["emotion", "speaker"]).reset_index(drop=True)
        save(fused, tmp_path)
        served = load(tmp_path, {})
        np.testing.assert_allclose(
            served.predict_proba(unseen), fused.predict_proba(unseen), atol=1e-5
        )
        assert _uar(test["emotion"].to_numpy(), served.predict_proba(unseen), fused.classes_) > 0.4
    finally:
        fused.release()
