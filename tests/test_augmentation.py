"""Training-side augmentation: seeded copies, their cache, and that no copy of a test clip
ever reaches training."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.evaluation.splits import speaker_kfold
from experiments.families.sklearn_linear import SklearnLinearTrainer
from experiments.training.fitting import augmented_training_rows, fit_on_split
from flows.extract import extract_features
from ser_features.audio import load_audio
from ser_features.augmentation import AUGMENTATIONS, augment_clip, get_augmentation
from ser_features.feature_table import feature_columns

CLIP = "ravdess/Actor_03/03-01-05-02-01-01-03.flac"


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_copies_are_seeded_by_content_and_differ_from_the_source(shared_data, name):
    clip = load_audio(shared_data / CLIP)
    augmentation = get_augmentation(name)
    first = augment_clip(clip, augmentation, digest="a" * 32)
    again = augment_clip(clip, augmentation, digest="a" * 32)
    other = augment_clip(clip, augmentation, digest="b" * 32)
    np.testing.assert_array_equal(first.samples, again.samples)
    assert np.all(np.isfinite(first.samples)) and np.max(np.abs(first.samples)) <= 1.0
    assert first.sample_rate == clip.sample_rate
    if len(first.samples) == len(clip.samples):
        assert not np.allclose(first.samples, clip.samples, atol=1e-4)
        assert not np.array_equal(first.samples, other.samples)
    else:  # time stretch changes the length
        assert abs(len(first.samples) / len(clip.samples) - 1) <= 0.2


def test_unknown_augmentation_names_the_known_ones():
    with pytest.raises(ValueError, match="pitch_shift"):
        get_augmentation("reverse")


@pytest.mark.usefixtures("prefect_server")
def test_augmented_tables_keep_the_source_identity_and_are_cached(shared_data, tmp_path):
    data = tmp_path / "audio"
    shutil.copytree(shared_data / "ravdess" / "Actor_04", data / "Actor_04")
    originals = tmp_path / "features"
    copies = tmp_path / "pitch"
    extract_features([str(data)], str(originals), feature_set="egemaps")
    first = extract_features(
        [str(data)], str(copies), feature_set="egemaps", augmentation="pitch_shift"
    )
    assert (first.extracted, first.rows) == (60, 60)
    meta = pq.read_schema(copies / "features.parquet").metadata
    assert meta[b"ser.augmentation"] == b"pitch_shift@v1"
    source = pd.read_parquet(originals / "features.parquet")
    copy = pd.read_parquet(copies / "features.parquet")
    assert copy[["path", "digest", "emotion"]].equals(source[["path", "digest", "emotion"]])
    columns = feature_columns(source)
    assert not np.allclose(copy[columns].to_numpy(), source[columns].to_numpy())
    rerun = extract_features(
        [str(data)], str(copies), feature_set="egemaps", augmentation="pitch_shift"
    )
    assert (rerun.extracted, rerun.cached) == (0, 60)
    switched = extract_features(
        [str(data)], str(copies), feature_set="egemaps", augmentation="gaussian_noise"
    )
    assert (switched.extracted, switched.cached) == (60, 0)


def _table(n_speakers: int, per_speaker: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    emotions = ["angry", "sad", "happy", "neutral"]
    rows = []
    for s in range(n_speakers):
        for i in range(per_speaker):
            rows.append(
                {
                    "path": f"/corpus/s{s}/clip{i}.wav",
                    "digest": f"{s:04d}{i:04d}",
                    "speaker": f"s{s}",
                    "gender": "female" if s % 2 else "male",
                    "emotion": emotions[i % len(emotions)],
                    "f0": rng.normal(i % len(emotions), 0.3),
                    "f1": rng.normal(0, 1),
                }
            )
    return pd.DataFrame(rows)


@settings(max_examples=25, deadline=None)
@given(
    n_speakers=st.integers(5, 9),
    per_speaker=st.integers(4, 12),
    seed=st.integers(0, 10_000),
    duplicate=st.booleans(),
)
def test_no_copy_of_a_test_clip_is_kept_for_training(n_speakers, per_speaker, seed, duplicate):
    table = _table(n_speakers, per_speaker, seed)
    copies = table.copy()
    if duplicate:  # the same audio stored under a training clip's name: same digest
        copies.loc[0, "path"] = table.loc[len(table) - 1, "path"]
    for split in speaker_kfold(table, n_splits=5, seed=seed):
        train, test = table.iloc[split.train_index], table.iloc[split.test_index]
        kept = augmented_training_rows(copies, train, test)
        assert not set(kept["path"]) & set(test["path"])
        assert not set(kept["digest"]) & set(test["digest"])
        assert set(kept["speaker"]) <= set(train["speaker"])


def test_fit_on_split_trains_on_copies_of_training_clips_only():
    """Copies of test clips carry a label no real clip has: it must never be learned."""
    table = _table(6, 8, seed=1)
    copies = table.assign(f0=table["f0"] + 0.05)
    split = speaker_kfold(table, n_splits=3, seed=0)[0]
    test_paths = set(table.iloc[split.test_index]["path"])
    copies.loc[copies["path"].isin(test_paths), "emotion"] = "boredom"
    trainer = SklearnLinearTrainer(cv_folds=2)
    evaluation = fit_on_split(trainer, table, split, augmented=copies)
    assert "boredom" not in trainer.classes_
    assert set(evaluation.classes) == {"angry", "sad", "happy", "neutral"}
    leaky = SklearnLinearTrainer(cv_folds=2).fit(
        pd.concat([table, copies])[["f0", "f1"]],
        pd.concat([table, copies])["emotion"].to_numpy(),
    )
    assert "boredom" in leaky.classes_  # the check above would see a leak
