"""Imbalanced labels, as real data is: splits keep every label on both sides, a majority label
does not swallow the rest, a label too rare to split stops the run with a clear message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from synthetic_features import speaker_blobs

from experiments.config import load_config
from experiments.evaluation.metrics import evaluate
from experiments.evaluation.splits import (
    grouping_notes,
    require_splittable_labels,
    speaker_independent_split,
)
from experiments.families.sklearn_mlp import SklearnMLPTrainer
from flows.train import training_table


def skewed_table(*, n_speakers: int = 10, rare_speakers: tuple[int, ...] = (2, 7)) -> pd.DataFrame:
    """Mostly ``neutral``; ``frustrated`` only from the speakers in ``rare_speakers``."""
    rows = []
    for s in range(n_speakers):
        rows += [{"speaker": f"c_{s}", "emotion": "neutral", "gender": "female"}] * 8
        if s in rare_speakers:
            rows += [{"speaker": f"c_{s}", "emotion": "frustrated", "gender": "female"}] * 2
    return pd.DataFrame(rows).assign(corpus="c")


def test_the_held_out_speakers_are_redrawn_until_every_label_is_on_both_sides():
    table = skewed_table()
    redrawn = 0
    for seed in range(12):
        split = speaker_independent_split(table, test_fraction=0.2, seed=seed)
        train = set(table.iloc[split.train_index]["emotion"])
        test = set(table.iloc[split.test_index]["emotion"])
        assert train == test == {"neutral", "frustrated"}, split.description
        redrawn += "drawn" in split.description
    assert redrawn, "some seed's first draw left 'frustrated' on one side"


def test_a_label_from_one_speaker_stops_the_split_with_what_to_do():
    table = skewed_table(rare_speakers=(4,))
    with pytest.raises(ValueError, match=r"'frustrated' \(2 clip\(s\), 1 speaker group\)") as err:
        require_splittable_labels(table)
    assert "data.labels.map" in str(err.value) and "data.labels.drop" in str(err.value)


def test_the_label_mapping_applies_before_the_check(tmp_path):
    table = skewed_table(rare_speakers=(4,))
    table["f0"] = np.arange(len(table), dtype=float)
    table["path"] = [f"/clips/{i}.wav" for i in range(len(table))]
    features = tmp_path / "features.parquet"
    table.to_parquet(features)

    def config(labels: dict) -> object:
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({"data": {"folders": ["x"], "labels": labels}}))
        return load_config(path)

    with pytest.raises(ValueError, match="'frustrated'"):
        training_table(config({}), features)
    merged = training_table(config({"map": {"frustrated": "neutral"}}), features)
    assert set(merged["emotion"]) == {"neutral"} and len(merged) == len(table)
    dropped = training_table(config({"drop": ["frustrated"]}), features)
    assert set(dropped["emotion"]) == {"neutral"} and len(dropped) == 80
    with pytest.raises(ValueError, match="no clips to train on"):
        training_table(config({"keep": ["joy"]}), features)


def test_grouping_notes_say_what_splits_keep_apart_and_warn_without_speakers():
    table = pd.DataFrame({"grouped_by": ["speaker"] * 3 + ["recording"] * 2})
    first, warning = grouping_notes(table)
    assert first == "splits keep clips apart by speaker (3 clips), recording (2 clips)"
    assert "one person may be on both sides" in warning
    assert grouping_notes(pd.DataFrame({"speaker": ["a"]})) == [
        "splits keep clips apart by speaker (1 clips)"
    ]


def test_the_mlp_weights_classes_so_a_minority_label_is_still_heard():
    features, labels, speakers = speaker_blobs(
        ["neutral", "frustrated"], n_speakers=6, per_class=60, n_features=8, centre_scale=0.5
    )
    keep = (labels == "neutral") | (np.arange(len(labels)) % 60 < 6)  # 10% frustrated
    features, labels, speakers = features[keep], labels[keep], speakers[keep]
    test = speakers == "spk5"
    trainer = SklearnMLPTrainer(param_grid={"hidden_layer_sizes": [[16]]}, max_iter=300)
    trainer.fit(features[~test], labels[~test], speakers[~test])
    assert trainer.params()["class_weight"] == "balanced"
    result = evaluate(labels[test], trainer.predict_proba(features[test]), trainer.classes_)
    minority = list(result.classes).index("frustrated")
    recall = result.confusion[minority, minority] / result.confusion[minority].sum()
    assert recall >= 0.5, result.report
