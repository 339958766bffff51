"""Experiment YAML files: the shipped ones parse, mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.config import FAMILY_NAMES, ConfigError, load_config, parse_config

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_parse(path):
    config = load_config(path)
    assert config.data.folders
    assert set(config.trainers) <= set(FAMILY_NAMES)


def test_augmentations_are_read_and_kept_beside_the_features():
    config = parse_config(
        {"data": {"folders": ["x"], "features_dir": "f", "augment": "pitch_shift"}}
    )
    assert config.data.augment == ("pitch_shift",)
    assert Path(config.data.augmented_dir("pitch_shift")) == Path("f/augmented/pitch_shift")


def test_random_split_config_is_labelled_as_such():
    config = load_config(EXPERIMENTS / "ravdess_random_split.yaml")
    assert config.protocol.kind == "random_stratified"
    assert load_config(EXPERIMENTS / "ravdess_speaker_independent.yaml").protocol.kind == (
        "speaker_independent"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"data": {"folders": ["x"]}, "protcol": {}}, "unknown keys"),
        ({"data": {"folders": ["x"], "features": "mfcc_only"}}, "is not one of"),
        ({"data": {"folders": ["x"]}, "protocol": {"kind": "leave_one_out"}}, "protocol.kind"),
        ({"data": {"folders": ["x"]}, "protocol": {"kind": "cross_corpus"}}, "train_corpora"),
        ({"data": {"folders": ["x"]}, "trainers": {"xgboost": {}}}, "unknown trainers"),
        ({"data": {"folders": ["x"], "augment": ["reverse"]}}, r"augment \['reverse'\] unknown"),
        (
            {
                "data": {"folders": ["x"]},
                "trainers": {"sklearn_mlp": {}},
                "serving": {"session_model": ["keras_ann"]},
            },
            "session_model must list configured trainers",
        ),
    ],
)
def test_mistakes_are_named(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw, source="test.yaml")


def test_missing_file_and_data_override(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    config = parse_config({"data": {"folders": ["a"]}}).with_data_folders(["b", "c"])
    assert config.data.folders == ("b", "c")
