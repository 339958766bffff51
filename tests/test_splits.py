"""Tests for the evaluation protocols in ``experiments.evaluation.splits`` (synthetic tables)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from experiments.evaluation.splits import (
    CROSS_CORPUS,
    RANDOM_SPLIT_NOTE,
    RANDOM_STRATIFIED,
    SPEAKER_INDEPENDENT,
    Split,
    assert_speaker_disjoint,
    cross_corpus_split,
    group_folds_for_tuning,
    random_stratified_kfold,
    random_stratified_split,
    speaker_independent_split,
    speaker_kfold,
)
from ser_features.labels import EMOTIONS

RAVDESS_EMOTIONS = EMOTIONS[:8]


def ravdess_like(n_actors: int = 20, clips_per_emotion: int = 3) -> pd.DataFrame:
    """RAVDESS-shaped table: odd actors male, even actors female, 8 emotions."""
    rows = [
        {
            "corpus": "ravdess",
            "speaker": f"ravdess_{actor:02d}",
            "gender": "male" if actor % 2 else "female",
            "emotion": emotion,
            "f0_mean": float(actor),
        }
        for actor in range(1, n_actors + 1)
        for emotion in RAVDESS_EMOTIONS
        for _ in range(clips_per_emotion)
    ]
    return pd.DataFrame(rows)


def two_corpora() -> pd.DataFrame:
    """A TESS-like corpus (2 female speakers) and an EmoDB-like one (4 speakers, boredom)."""
    tess = [
        ("tess", f"tess_{s}", "female", e)
        for s in ("OAF", "YAF")
        for e in ("neutral", "happy", "sad", "angry", "surprised")
        for _ in range(2)
    ]
    emodb = [
        ("emodb", f"emodb_{s:02d}", "male" if s % 2 else "female", e)
        for s in (3, 8, 9, 10)
        for e in ("neutral", "happy", "sad", "angry", "boredom")
        for _ in range(2)
    ]
    return pd.DataFrame(tess + emodb, columns=["corpus", "speaker", "gender", "emotion"])


@st.composite
def random_tables(draw) -> pd.DataFrame:
    n_speakers = draw(st.integers(3, 25))
    labels = draw(st.lists(st.sampled_from(EMOTIONS), min_size=1, max_size=6, unique=True))
    rows = []
    for s in range(n_speakers):
        gender = draw(st.sampled_from(["male", "female", None]))
        emotions = draw(st.lists(st.sampled_from(labels), min_size=1, max_size=8))
        rows += [{"speaker": f"c_{s}", "gender": gender, "emotion": e} for e in emotions]
    order = draw(st.permutations(range(len(rows))))
    return pd.DataFrame(rows).iloc[list(order)].reset_index(drop=True)


def sides(table: pd.DataFrame, split: Split) -> tuple[set[str], set[str]]:
    speakers = table["speaker"].to_numpy()
    return set(speakers[split.train_index]), set(speakers[split.test_index])


# --- speaker-independent ---------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(table=random_tables(), seed=st.integers(0, 2**16), fraction=st.floats(0.05, 0.6))
def test_speaker_independent_split_never_shares_a_speaker(table, seed, fraction):
    split = speaker_independent_split(table, test_fraction=fraction, seed=seed)
    train, test = sides(table, split)
    assert train and test and not train & test
    assert set(split.test_speakers) == test
    assert sorted([*split.train_index, *split.test_index]) == list(range(len(table)))
    assert split.protocol == SPEAKER_INDEPENDENT


@settings(max_examples=60, deadline=None)
@given(table=random_tables(), seed=st.integers(0, 2**16), n_splits=st.integers(2, 6))
def test_speaker_kfold_folds_are_disjoint_and_cover_every_row_once(table, seed, n_splits):
    n_speakers = table["speaker"].nunique()
    if n_splits > n_speakers:
        with pytest.raises(ValueError, match="more than the"):
            speaker_kfold(table, n_splits=n_splits, seed=seed)
        return
    folds = speaker_kfold(table, n_splits=n_splits, seed=seed)
    assert len(folds) == n_splits
    tested = np.concatenate([fold.test_index for fold in folds])
    assert sorted(tested) == list(range(len(table)))
    held_out = Counter(s for fold in folds for s in fold.test_speakers)
    assert set(held_out) == set(table["speaker"]) and set(held_out.values()) == {1}
    for fold in folds:
        train, test = sides(table, fold)
        assert test and not train & test
        assert len(fold.train_index) + len(fold.test_index) == len(table)


def test_speaker_kfold_is_seeded_and_stratified_on_balanced_data():
    table = ravdess_like()
    folds = speaker_kfold(table, n_splits=5, seed=3)
    again = speaker_kfold(table, n_splits=5, seed=3)
    assert [f.test_speakers for f in folds] == [f.test_speakers for f in again]
    assert [f.test_speakers for f in folds] != [f.test_speakers for f in speaker_kfold(table)]
    for fold in folds:
        assert len(fold.test_speakers) == 4
        counts = table["emotion"].iloc[fold.test_index].value_counts()
        assert set(counts) == {12}  # 4 actors x 3 clips of every emotion


def test_explicit_test_speakers_are_honoured():
    table = ravdess_like()
    split = speaker_independent_split(table, test_speakers=["ravdess_20", "ravdess_01"])
    assert split.test_speakers == ("ravdess_01", "ravdess_20")
    assert set(table["speaker"].iloc[split.test_index]) == {"ravdess_01", "ravdess_20"}
    assert len(split.test_index) == 2 * 8 * 3
    assert "ravdess_01, ravdess_20" in split.description


def test_seeded_choice_is_gender_balanced_for_ravdess():
    table = ravdess_like()
    chosen = set()
    for seed in range(10):
        split = speaker_independent_split(table, seed=seed)
        genders = table.drop_duplicates("speaker").set_index("speaker")["gender"]
        assert len(split.test_speakers) == 4
        assert Counter(genders[list(split.test_speakers)]) == {"male": 2, "female": 2}
        chosen.add(split.test_speakers)
    assert len(chosen) > 1  # the seed matters
    assert speaker_independent_split(table, seed=7).test_speakers == (
        speaker_independent_split(table, seed=7).test_speakers
    )


def test_gender_balance_keeps_a_training_speaker_of_each_gender():
    table = two_corpora()  # 4 female, 2 male speakers
    split = speaker_independent_split(table, test_fraction=0.5)
    train, _ = sides(table, split)
    assert len(split.test_speakers) == 3
    assert set(table.loc[table["speaker"].isin(train), "gender"]) == {"male", "female"}


def test_speaker_independent_split_without_gender_column():
    table = ravdess_like(n_actors=5).drop(columns="gender")
    split = speaker_independent_split(table, test_fraction=0.4)
    assert len(split.test_speakers) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"test_speakers": ["ravdess_99", "nobody"]}, "nobody, ravdess_99"),
        ({"test_speakers": []}, "proper subset"),
        ({"test_fraction": 1.5}, "test_fraction"),
    ],
)
def test_speaker_independent_split_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        speaker_independent_split(ravdess_like(n_actors=4), **kwargs)


def test_one_speaker_is_not_enough():
    with pytest.raises(ValueError, match=">= 2 speakers"):
        speaker_independent_split(ravdess_like(n_actors=1))


def test_speaker_kfold_rejects_too_many_folds():
    with pytest.raises(ValueError, match="n_splits=5 is more than the 3 speakers"):
        speaker_kfold(ravdess_like(n_actors=3), n_splits=5)


def test_assert_speaker_disjoint_names_the_leaking_speakers():
    table = ravdess_like(n_actors=3)
    leaky = Split(
        train_index=np.arange(0, 30),
        test_index=np.arange(30, 72),
        protocol=SPEAKER_INDEPENDENT,
        test_speakers=("ravdess_02", "ravdess_03"),
        description="leaky",
    )
    with pytest.raises(ValueError, match=r"ravdess_02$"):
        assert_speaker_disjoint(table, leaky)


def test_split_indices_are_read_only_and_validated():
    split = speaker_independent_split(ravdess_like(n_actors=4), test_speakers=["ravdess_01"])
    with pytest.raises(ValueError):
        split.test_index[0] = 5
    with pytest.raises(ValueError, match="both sides"):
        Split(np.array([0, 1]), np.array([1]), SPEAKER_INDEPENDENT, (), "overlap")
    with pytest.raises(ValueError, match="unknown protocol"):
        Split(np.array([0]), np.array([1]), "leave_one_out", (), "bad")


# --- random (optimistic) ---------------------------------------------------------------------


def test_random_split_is_stratified_and_labelled_optimistic():
    table = ravdess_like()
    split = random_stratified_split(table, test_fraction=0.25, seed=1)
    assert split.protocol == RANDOM_STRATIFIED
    assert RANDOM_SPLIT_NOTE in split.description
    assert "optimistic" in split.description
    counts = table["emotion"].iloc[split.test_index].value_counts()
    assert set(counts) == {15}  # a quarter of 60 clips per emotion
    train, test = sides(table, split)
    assert train & test  # the whole point: same speakers on both sides


def test_random_kfold_is_stratified_and_covers_every_row():
    table = ravdess_like()
    folds = random_stratified_kfold(table, n_splits=5, seed=0)
    assert sorted(np.concatenate([f.test_index for f in folds])) == list(range(len(table)))
    for fold in folds:
        assert fold.protocol == RANDOM_STRATIFIED and RANDOM_SPLIT_NOTE in fold.description
        assert set(table["emotion"].iloc[fold.test_index].value_counts()) == {12}


def test_random_split_names_too_rare_labels():
    table = pd.DataFrame({"speaker": list("aabbc"), "emotion": ["sad"] * 4 + ["calm"]})
    with pytest.raises(ValueError, match=r"calm \(1\)"):
        random_stratified_split(table)


# --- cross-corpus ----------------------------------------------------------------------------


def test_cross_corpus_restricts_to_shared_labels():
    table = two_corpora()
    split = cross_corpus_split(table, train_corpora=["tess"], test_corpora=["emodb"])
    assert split.protocol == CROSS_CORPUS
    assert split.labels == ("neutral", "happy", "sad", "angry")
    train = table.iloc[split.train_index]
    test = table.iloc[split.test_index]
    assert set(train["corpus"]) == {"tess"} and set(test["corpus"]) == {"emodb"}
    assert set(train["emotion"]) == set(test["emotion"]) == set(split.labels)
    assert split.test_speakers == ("emodb_03", "emodb_08", "emodb_09", "emodb_10")
    assert "train on tess, test on emodb" in split.description


def test_cross_corpus_can_train_on_every_label_as_a_deployed_model_does():
    table = two_corpora()
    split = cross_corpus_split(
        table, train_corpora=["tess"], test_corpora=["emodb"], all_training_labels=True
    )
    train = table.iloc[split.train_index]
    test = table.iloc[split.test_index]
    assert set(train["emotion"]) == set(table.loc[table["corpus"] == "tess", "emotion"])
    assert set(train["emotion"]) > set(split.labels)  # TESS-only labels stay in training
    assert set(test["emotion"]) == set(split.labels)
    assert set(train["corpus"]) == {"tess"} and set(test["corpus"]) == {"emodb"}


def test_cross_corpus_with_given_labels():
    table = two_corpora()
    split = cross_corpus_split(
        table, train_corpora=["emodb"], test_corpora=["tess"], labels=["sad", "happy"]
    )
    assert split.labels == ("happy", "sad")
    assert set(table["emotion"].iloc[split.test_index]) == {"happy", "sad"}
    with pytest.raises(ValueError, match="boredom"):
        cross_corpus_split(
            table, train_corpora=["emodb"], test_corpora=["tess"], labels=["sad", "boredom"]
        )


@pytest.mark.parametrize(
    ("train", "test", "message"),
    [
        (["tess"], ["savee"], "corpus not in the table: savee"),
        (["tess", "emodb"], ["emodb"], "both sides.*emodb"),
        ([], ["emodb"], "at least one"),
    ],
)
def test_cross_corpus_errors(train, test, message):
    with pytest.raises(ValueError, match=message):
        cross_corpus_split(two_corpora(), train_corpora=train, test_corpora=test)


# --- tuning folds ----------------------------------------------------------------------------


def test_group_folds_for_tuning_reduce_n_splits_and_work_in_grid_search():
    x, y = make_classification(n_samples=60, n_features=5, random_state=0)
    groups = np.repeat(["s1", "s2"], 30)
    folds = group_folds_for_tuning(groups, n_splits=3, seed=0)
    assert len(folds) == 2
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
    search = GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=folds).fit(x, y)
    assert len(search.cv_results_["split1_test_score"]) == 2


def test_group_folds_for_tuning_stratified_and_errors():
    table = ravdess_like(n_actors=6)
    groups, labels = table["speaker"].to_numpy(), table["emotion"].to_numpy()
    folds = group_folds_for_tuning(groups, n_splits=3, labels=labels)
    assert len(folds) == 3
    assert sorted(np.concatenate([test for _, test in folds])) == list(range(len(table)))
    with pytest.raises(ValueError, match=">= 2 speakers"):
        group_folds_for_tuning(np.array(["a", "a"]))
