"""Training on several corpora: splits keep speakers and labels honest, leave-one-corpus-out
never trains on the held-out corpus, fusion weights never see the test speakers."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from synthetic_features import speaker_blobs

from experiments.config import ConfigError, parse_config
from experiments.evaluation.splits import (
    LEAVE_ONE_CORPUS_OUT,
    assert_speaker_disjoint,
    cross_corpus_split,
    leave_one_corpus_out_split,
    speaker_independent_split,
    speaker_kfold,
)
from experiments.families import get_family
from experiments.tracking.runs import log_evaluation
from experiments.training.fitting import corpus_repeats, fit_on_split, split_for

#: Two corpora with different label sets: "calm" only in the first, "disgust" only in the second.
FIRST = ["neutral", "calm", "happy", "sad", "angry"]
SECOND = ["neutral", "happy", "sad", "angry", "disgust"]


def corpus(name: str, labels: list[str], n_speakers: int, seed: int) -> pd.DataFrame:
    features, emotions, speakers = speaker_blobs(
        labels, n_speakers=n_speakers, per_class=4, n_features=8, seed=seed
    )
    table = features.assign(
        emotion=emotions,
        speaker=[f"{name}_{s}" for s in speakers],
        corpus=name,
        gender=["male" if int(s[3:]) % 2 else "female" for s in speakers],
        path=[f"/{name}/{i}.wav" for i in range(len(features))],
        digest=[f"{name}{i}" for i in range(len(features))],
    )
    return table


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return pd.concat(
        [corpus("first", FIRST, 10, seed=0), corpus("second", SECOND, 20, seed=1)],
        ignore_index=True,
    )


def test_the_held_out_speakers_come_from_every_corpus_gender_balanced(table):
    split = speaker_independent_split(table, test_fraction=0.2, seed=3)
    assert_speaker_disjoint(table, split)
    test = table.iloc[split.test_index]
    held = test.groupby("corpus")["speaker"].nunique().to_dict()
    assert held == {"first": 2, "second": 4}  # a fifth of each corpus's speakers
    for _, group in test.drop_duplicates("speaker").groupby("corpus"):
        assert set(group["gender"]) == {"male", "female"}
    # the labels are the union; each corpus keeps its own on both sides
    assert set(split.labels) == set(FIRST) | set(SECOND)
    train = table.iloc[split.train_index]
    for name, labels in (("first", FIRST), ("second", SECOND)):
        assert set(train[train.corpus == name]["emotion"]) == set(labels)
        assert set(test[test.corpus == name]["emotion"]) == set(labels)


def test_every_fold_holds_out_speakers_of_every_corpus(table):
    folds = speaker_kfold(table, n_splits=5, seed=0)
    seen = []
    for fold in folds:
        assert_speaker_disjoint(table, fold)
        test = table.iloc[fold.test_index]
        assert set(test["corpus"]) == {"first", "second"}
        seen += list(fold.test_index)
    assert sorted(seen) == list(range(len(table)))


def test_leave_one_corpus_out_never_trains_on_the_held_out_corpus(table):
    split = leave_one_corpus_out_split(table, test_corpus="second")
    assert split.protocol == LEAVE_ONE_CORPUS_OUT
    assert set(table.iloc[split.train_index]["corpus"]) == {"first"}
    assert set(table.iloc[split.test_index]["corpus"]) == {"second"}
    assert set(split.labels) == set(FIRST) & set(SECOND)  # the labels both sides have
    config = parse_config(
        {
            "data": {"folders": ["x"]},
            "protocol": {"kind": "leave_one_corpus_out", "test_corpora": ["first"]},
            "trainers": {"prior": {}},
        }
    )
    through_config = split_for(table, config.protocol)
    assert set(table.iloc[through_config.train_index]["corpus"]) == {"second"}
    with pytest.raises(ConfigError, match="test_corpora naming the one corpus"):
        parse_config({"data": {"folders": ["x"]}, "protocol": {"kind": "leave_one_corpus_out"}})


def test_a_cross_corpus_split_may_train_on_every_label_of_its_corpora(table):
    shared = leave_one_corpus_out_split(table, test_corpus="second")
    deployed = cross_corpus_split(
        table, train_corpora=["first"], test_corpora=["second"], all_training_labels=True
    )
    assert deployed.labels == shared.labels
    classes = {}
    for name, split in [("shared", shared), ("deployed", deployed)]:
        trainer = get_family("prior").trainer({}, seed=0)
        fit_on_split(trainer, table, split)
        classes[name] = set(trainer.classes_)
    assert classes["shared"] == set(shared.labels)
    assert classes["deployed"] == set(FIRST)  # labels the test corpus lacks are learnt too


def test_per_corpus_metrics_and_corpus_balancing(table):
    split = speaker_independent_split(table, test_fraction=0.2, seed=0)
    trainer = get_family("sklearn_linear").trainer({"param_grid": {"C": [0.1]}}, seed=0)
    evaluation = fit_on_split(trainer, table, split, balance_corpora=True)
    assert set(evaluation.by_corpus) == {"first", "second"}
    test_corpora = table.iloc[split.test_index]["corpus"]
    for corpus, own in evaluation.by_corpus.items():  # each corpus scored on its own clips
        assert 0 <= own.metrics["uar"] <= 1
        assert own.confusion.sum() == (test_corpora == corpus).sum()
    corpora = np.array(["a"] * 2 + ["b"] * 6)
    repeated = corpora[corpus_repeats(corpora)]
    assert (repeated == "a").sum() == 6 and (repeated == "b").sum() == 6


def test_a_multi_corpus_run_logs_each_corpus_confusion_matrix(table, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # the store's artifacts go under the working folder
    split = speaker_independent_split(table, test_fraction=0.2, seed=0)
    trainer = get_family("sklearn_linear").trainer({"param_grid": {"C": [0.1]}}, seed=0)
    evaluation = fit_on_split(trainer, table, split)
    with mlflow.start_run() as run:
        log_evaluation(evaluation, title="sklearn_linear · two corpora")
    client = mlflow.MlflowClient()
    files = {item.path for item in client.list_artifacts(run.info.run_id, "evaluation/second")}
    assert files == {
        f"evaluation/second/{name}"
        for name in ("confusion_matrix.png", "confusion_matrix.csv", "classification_report.txt")
    }
    metrics = client.get_run(run.info.run_id).data.metrics
    for corpus in ("first", "second"):
        assert metrics[f"{corpus}_uar"] == pytest.approx(
            evaluation.by_corpus[corpus].metrics["uar"]
        )
        local = client.download_artifacts(
            run.info.run_id, f"evaluation/{corpus}/confusion_matrix.csv", str(tmp_path)
        )
        counts = pd.read_csv(local, index_col=0).to_numpy()
        assert counts.sum() == (table.iloc[split.test_index]["corpus"] == corpus).sum()


def test_fusion_weights_are_chosen_without_the_test_speakers(table):
    split = speaker_independent_split(table, test_fraction=0.2, seed=0)
    options = {
        "members": {"sklearn_linear": {"param_grid": {"C": [0.1]}}, "prior": {}},
        "inner_folds": 3,
        "weight_step": 0.25,
    }
    first = get_family("fused").trainer(options, seed=0)
    fit_on_split(first, table, split)
    # scramble everything about the test speakers: the weights must not move
    scrambled = table.copy()
    test_rows = scrambled.index[split.test_index]
    rng = np.random.default_rng(7)
    feature_names = [c for c in table.columns if c.startswith("f")]
    scrambled.loc[test_rows, feature_names] = rng.normal(size=(len(test_rows), len(feature_names)))
    scrambled.loc[test_rows, "emotion"] = rng.permutation(scrambled.loc[test_rows, "emotion"])
    second = get_family("fused").trainer(options, seed=0)
    fit_on_split(second, scrambled, split)
    assert second.weights_ == first.weights_
    assert second.temperatures_ == first.temperatures_
