"""The README results table: every family under the honest and the published protocol.

Run by hand (not in CI), from the repository root::

    .venv/bin/python benchmarks/results_table.py --data ../shared/data/ravdess

For each model family (and the seeds' recipe: mean MFCC/chroma/mel + an unscaled
``MLPClassifier(300,)`` as published) it prints speaker-independent 5-fold UAR, accuracy and
macro-F1 (mean ± std over folds, actors disjoint) and the accuracy of one random stratified
75/25 split (same actors on both sides, as the published projects did).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.neural_network import MLPClassifier
from tables import fold_table_columns

import flows
from experiments.evaluation.metrics import evaluate
from experiments.evaluation.splits import Split, random_stratified_split, speaker_kfold
from experiments.training.fitting import build_trainer, fit_on_split, release
from ser_features.feature_table import FEATURES_FILE, feature_columns, read_feature_table
from ser_features.labels import ordered_labels

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess"
FAMILY_PARAMS: dict[str, dict[str, Any]] = {
    "sklearn_mlp": {},
    "keras_ann": {"epochs": 100, "patience": 10},
    "keras_cnn": {"epochs": 60, "patience": 8},
    "h2o_automl": {"max_runtime_secs": 150, "max_models": 10, "nfolds": 3},
}


def features_for(data: Path, feature_set: str, out: Path) -> pd.DataFrame:
    """The feature table of ``data`` (extracted through the flow, cached in ``out``)."""
    from flows.extract import extract_features

    extract_features([str(data)], str(out), feature_set=feature_set)
    return read_feature_table(out / FEATURES_FILE)[0]


def seeds_mlp_scores(table: pd.DataFrame, split: Split) -> dict[str, float]:
    """The published recipe's classifier: unscaled MLP(300,), adaptive rate, fixed settings."""
    columns = feature_columns(table)
    train, test = table.iloc[split.train_index], table.iloc[split.test_index]
    model = MLPClassifier(
        alpha=0.01,
        batch_size=256,
        epsilon=1e-08,
        hidden_layer_sizes=(300,),
        learning_rate="adaptive",
        max_iter=500,
        random_state=0,
    ).fit(train[columns].to_numpy(), train["emotion"].to_numpy())
    classes = ordered_labels(set(train["emotion"]))
    order = [list(model.classes_).index(label) for label in classes]
    proba = model.predict_proba(test[columns].to_numpy())[:, order]
    return evaluate(test["emotion"].to_numpy(), proba, classes).metrics


def family_scores(family: str, table: pd.DataFrame, split: Split) -> dict[str, float]:
    trainer = build_trainer(family, FAMILY_PARAMS[family], seed=0)
    metrics = fit_on_split(trainer, table, split).metrics
    release(trainer)
    return metrics


def row(name: str, table: pd.DataFrame, score, folds: int) -> dict[str, str]:
    started = time.perf_counter()
    fold_metrics = [score(table, split) for split in speaker_kfold(table, n_splits=folds)]
    random = score(table, random_stratified_split(table, test_fraction=0.25, seed=0))
    minutes = (time.perf_counter() - started) / 60
    result = {
        "model": name,
        **fold_table_columns(fold_metrics, folds=folds),
        "random-split accuracy": f"{random['accuracy']:.3f}",
        "minutes": f"{minutes:.1f}",
    }
    print(" | ".join(result.values()), flush=True)
    return result


def main() -> None:
    flows.prefect_server_environment()  # before the first flow starts a Prefect server
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--features", default="spectral_prosodic")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--families", nargs="*", default=["seeds", *FAMILY_PARAMS])
    args = parser.parse_args()
    rows = []
    if "seeds" in args.families:
        seed_table = features_for(args.data, "seed180", Path("data/features/bench-seed180"))
        name = "seeds' recipe: seed180 + MLP(300)"
        rows.append(row(name, seed_table, seeds_mlp_scores, args.folds))
    table = features_for(args.data, args.features, Path(f"data/features/bench-{args.features}"))
    for family in [f for f in args.families if f in FAMILY_PARAMS]:
        scorer = lambda t, s, family=family: family_scores(family, t, s)  # noqa: E731
        rows.append(row(f"{family} on {args.features}", table, scorer, args.folds))
    print()
    print(pd.DataFrame(rows).to_markdown(index=False))
    print(f"\nclips: {len(table)}, speakers: {table['speaker'].nunique()}, data: {args.data}")


if __name__ == "__main__":
    main()
