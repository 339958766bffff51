"""The same contract checks over every registered model family, in the spirit of
scikit-learn's ``parametrize_with_checks``: typed options, fit on a small table, probabilities
in ``classes_`` order summing to 1, save, load, the same answers."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from synthetic_features import frame_blobs, speaker_blobs

from experiments.families import FAMILIES, OptionsError, get_family
from experiments.families.predictors import load_predictor, save_predictor
from ser_features.labels import ordered_labels

LABELS = ["sad", "happy", "angry", "neutral"]
TRAIN_SPEAKERS = [f"spk{i}" for i in range(6)]
#: Small budgets so every family fits in seconds; a family not listed gets its defaults.
QUICK: dict[str, dict] = {
    "sklearn_mlp": {"param_grid": {"hidden_layer_sizes": [[16]]}, "cv_folds": 2},
    "sklearn_linear": {"param_grid": {"C": [0.1]}, "cv_folds": 2},
    "keras_ann": {"hidden_units": [16, 8], "epochs": 5, "patience": 2},
    "keras_cnn": {"filters": [4], "dense_units": 8, "epochs": 3, "patience": 2},
    "h2o_automl": {
        "max_runtime_secs": 60,
        "max_models": 1,
        "nfolds": 2,
        "exclude_algos": ["DeepLearning", "StackedEnsemble", "XGBoost", "DRF", "GBM"],
        "max_mem_size": "1G",
    },
    "frame_crnn": {
        "channels": (8, 8),
        "time_pooling": (2, 1),
        "rnn_hidden": 8,
        "attention_dim": 8,
        "epochs": 4,
        "patience": 2,
        "time_mask_width": 3,
        "freq_mask_width": 2,
    },
    "fused": {
        "members": {"sklearn_linear": {"param_grid": {"C": [0.1]}, "cv_folds": 2}, "prior": {}},
        "inner_folds": 2,
        "weight_step": 0.25,
    },
}
#: Families whose contract needs more than this process (skipped with the reason when absent).
NEEDS_JAVA = {"h2o_automl"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def table():
    return speaker_blobs(LABELS, n_speakers=8, per_class=6, n_features=12)


def table_for(name: str, functionals):
    """The small table a family can read: functionals, or frames for frame-level families."""
    if "logmel_frames" in get_family(name).feature_sets:
        return frame_blobs(LABELS, n_speakers=8, per_class=6)
    return functionals


@pytest.fixture(scope="module")
def h2o_cluster_for_contract(tmp_path_factory):
    from experiments.engines import h2o_cluster

    if not h2o_cluster.java_available():
        pytest.skip("java not found (apt-get install openjdk-17-jre-headless)")
    ice = tmp_path_factory.mktemp("h2o_ice")
    h2o_cluster.connect_h2o(max_mem_size="1G", port=_free_port(), ice_root=ice)
    yield
    h2o_cluster.shutdown_h2o()


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_declares_itself(name):
    family = get_family(name)
    assert family.name == name and family.summary
    assert "seed" in family.option_names
    with pytest.raises(OptionsError, match=r"unknown option 'no_such_option'.*allowed: "):
        family.validate({"no_such_option": 1})
    with pytest.raises(OptionsError, match="seed"):
        family.validate({"seed": "not a number"})
    with pytest.raises(OptionsError, match="cv_overrides"):
        family.validate({"cv_overrides": {"no_such_option": 1}})
    assert family.validate(QUICK.get(name, {})) == family.validate(QUICK.get(name, {}))


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_fits_predicts_saves_and_loads(name, table, tmp_path, request):
    if name in NEEDS_JAVA:
        request.getfixturevalue("h2o_cluster_for_contract")
    features, labels, speakers = table_for(name, table)
    train = np.isin(speakers, TRAIN_SPEAKERS)
    family = get_family(name)
    trainer = family.trainer(QUICK.get(name, {}), seed=0)
    assert trainer.family == name
    try:
        assert trainer.fit(features[train], labels[train], speakers[train]) is trainer
        assert trainer.classes_ == ordered_labels(set(LABELS))
        proba = trainer.predict_proba(features[~train])
        assert proba.shape == (int((~train).sum()), len(LABELS))
        assert np.all(proba >= 0)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
        assert isinstance(trainer.params(), dict)

        folder = save_predictor(trainer, tmp_path / "predictor", feature_set="spectral_prosodic")
        loaded = load_predictor(folder)
        assert (loaded.family, loaded.classes) == (name, trainer.classes_)
        np.testing.assert_allclose(loaded.predict_proba(features[~train]), proba, atol=1e-5)
    finally:
        family.release(trainer)


def test_the_prior_family_is_the_chance_reference(table):
    features, labels, speakers = table
    trainer = get_family("prior").trainer({}, seed=0).fit(features, labels, speakers)
    np.testing.assert_allclose(trainer.predict_proba(features[:3]), 0.25)


def test_a_misspelled_trainer_option_fails_fast_naming_the_key(tmp_path):
    config = {
        "name": "typo",
        "data": {"folders": [str(tmp_path / "nowhere")]},
        "trainers": {"sklearn_linear": {"cv_fold": 3}},
    }
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(config))
    ser = Path(sys.executable).with_name("ser")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [str(ser), "train", "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds, not wall time: the check must not depend on what else the machine runs
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert result.returncode != 0
    message = " ".join((result.stdout + result.stderr).split())
    assert "trainers.sklearn_linear: unknown option 'cv_fold'" in message
    assert "allowed: cv_folds," in message
    assert "Traceback" not in message
    assert cpu < 5, f"took {cpu:.1f} CPU seconds to refuse"
    assert not (tmp_path / "mlruns").exists()


def test_fused_prefers_the_informative_member_and_is_deterministic(table):
    features, labels, speakers = table
    train = np.isin(speakers, TRAIN_SPEAKERS)
    fused = get_family("fused").trainer(QUICK["fused"], seed=0)
    fused.fit(features[train], labels[train], speakers[train])
    assert sum(fused.weights_.values()) == pytest.approx(1.0)
    # the informative member outweighs the chance reference on out-of-fold scores
    assert fused.weights_["sklearn_linear"] > fused.weights_["prior"]
    assert fused.member_oof_uar_["sklearn_linear"] > fused.member_oof_uar_["prior"]
    # the same data and seed give the same weights and answers (see test_multi_corpus.py for
    # the weights' independence from the test speakers)
    again = get_family("fused").trainer(QUICK["fused"], seed=0)
    again.fit(features[train].copy(), labels[train].copy(), speakers[train].copy())
    assert again.weights_ == fused.weights_
    np.testing.assert_allclose(
        again.predict_proba(features[~train]), fused.predict_proba(features[~train])
    )


def test_fused_member_options_are_checked_when_the_file_is_read():
    with pytest.raises(OptionsError, match=r"fused.members.sklearn_linear: unknown option 'C'"):
        get_family("fused").validate({"members": {"sklearn_linear": {"C": 1}}})
    with pytest.raises(OptionsError, match="unknown model family 'xgboost'"):
        get_family("fused").validate({"members": {"xgboost": {}}})


def test_a_fused_session_companion_leaves_out_members_that_cannot_learn_one():
    from experiments.config import ConfigError, parse_config

    automl = {"max_runtime_secs": 60, "nfolds": 3}
    options = {"members": {"sklearn_linear": {}, "h2o_automl": automl}}
    companion = get_family("fused").session_options(options)
    assert list(companion["members"]) == ["sklearn_linear"]
    assert list(options["members"]) == ["sklearn_linear", "h2o_automl"]  # the model keeps both
    base = {"name": "x", "data": {"folders": ["calls.csv"]}}
    only_automl = {"fused": {"members": {"h2o_automl": automl}}}
    with pytest.raises(ConfigError, match=r"no member of fused .* can learn a session companion"):
        parse_config({**base, "trainers": only_automl, "serving": {"session_model": ["fused"]}})
    assert parse_config({**base, "trainers": only_automl}).serving.session_model == ()
