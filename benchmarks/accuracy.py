"""Accuracy on voices and corpora the model never heard (run by hand, not in CI).

From the repository root::

    .venv/bin/python benchmarks/accuracy.py                        # the whole table
    .venv/bin/python benchmarks/accuracy.py --features spectral_prosodic --families sklearn_linear

For every model family, on the experiment config's feature set and augmentations, it prints
the speaker-independent 5-fold UAR, accuracy and macro-F1 on the RAVDESS dev actors (mean ±
std over folds, actors disjoint), the accuracy of one random stratified 75/25 split beside
them (same actors on both sides: optimistic, for comparison with published figures), and a
cross-corpus line: trained on all dev actors, scored on the TESS and EmoDB samples over the
labels both corpora share.  ``--speaker-norm`` adds the speaker-adaptive protocol: features
standardised per speaker on both sides, the test speakers' statistics taken from their
unlabelled clips (what a deployment has only when a session's clips arrive together).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.config import load_config
from experiments.evaluation.metrics import fold_table_columns
from experiments.evaluation.splits import (
    Split,
    cross_corpus_split,
    random_stratified_split,
    speaker_kfold,
)
from experiments.training.fitting import build_trainer, fit_on_split, release
from ser_features.feature_table import FEATURES_FILE, read_feature_table

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CONFIG = Path("experiments/ravdess_speaker_independent.yaml")
#: Budgets inside the folds, small enough for the whole table to run in about an hour.
FOLD_PARAMS: dict[str, dict[str, Any]] = {
    "sklearn_linear": {},
    "sklearn_mlp": {"param_grid": {"hidden_layer_sizes": [[256]], "alpha": [0.01, 1.0]}},
    "keras_ann": {"epochs": 100, "patience": 10},
    "keras_cnn": {"epochs": 60, "patience": 8},
    "h2o_automl": {"max_runtime_secs": 150, "max_models": 10, "nfolds": 3},
}


def extracted(data: Path, feature_set: str, out: Path, augmentation: str | None = None):
    """The feature table of ``data`` through the extraction flow (cached in ``out``)."""
    from flows.extract import extract_features

    extract_features([str(data)], str(out), feature_set=feature_set, augmentation=augmentation)
    return read_feature_table(out / FEATURES_FILE)[0]


def scores(
    family: str,
    table: pd.DataFrame,
    split: Split,
    augmented: pd.DataFrame | None,
    normalise: bool,
) -> dict[str, float]:
    trainer = build_trainer(family, FOLD_PARAMS[family], seed=0)
    try:
        evaluation = fit_on_split(
            trainer, table, split, augmented=augmented, normalise_speakers=normalise
        )
    finally:
        release(trainer)
    return evaluation.metrics


def row(
    name: str,
    family: str,
    tables: dict[str, pd.DataFrame],
    augmented: pd.DataFrame | None,
    *,
    folds: int,
    normalise: bool = False,
) -> dict[str, str]:
    started = time.perf_counter()
    dev = tables["ravdess"]
    fold_metrics = [
        scores(family, dev, split, augmented, normalise)
        for split in speaker_kfold(dev, n_splits=folds)
    ]
    random_split = random_stratified_split(dev, test_fraction=0.25, seed=0)
    random = scores(family, dev, random_split, augmented, normalise)
    result = {
        "model": name,
        **fold_table_columns(fold_metrics, folds=folds),
        "random-split acc.": f"{random['accuracy']:.3f}",
    }
    for corpus in ("tess", "emodb"):
        if corpus not in tables:
            result[f"→ {corpus} UAR"] = "n/a"
            continue
        both = pd.concat([dev, tables[corpus]], ignore_index=True)
        split = cross_corpus_split(both, train_corpora=["ravdess"], test_corpora=[corpus])
        try:
            metrics = scores(family, both, split, augmented, normalise)
            result[f"→ {corpus} UAR"] = f"{metrics['uar']:.3f} ({len(split.labels)} labels)"
        except ValueError as exc:  # e.g. a speaker with too few clips to normalise
            result[f"→ {corpus} UAR"] = f"n/a ({exc})"
    result["minutes"] = f"{(time.perf_counter() - started) / 60:.1f}"
    print(" | ".join(result.values()), flush=True)
    return result


def main() -> None:
    config = load_config(CONFIG)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="folder of the corpora")
    parser.add_argument("--features", default=config.data.features)
    parser.add_argument("--augment", nargs="*", default=list(config.data.augment))
    parser.add_argument("--families", nargs="*", default=list(FOLD_PARAMS))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--speaker-norm", action="store_true", help="add speaker-adaptive rows")
    parser.add_argument("--no-cross-corpus", action="store_true")
    args = parser.parse_args()

    cache = Path("data/features/bench")
    tables = {"ravdess": extracted(args.shared / "ravdess", args.features, cache / args.features)}
    if not args.no_cross_corpus:
        for corpus, folder in (("tess", "tess_sample"), ("emodb", "emodb_sample")):
            out = cache / f"{corpus}-{args.features}"
            tables[corpus] = extracted(args.shared / folder, args.features, out)
    copies = [
        extracted(args.shared / "ravdess", args.features, cache / f"{args.features}-{name}", name)
        for name in args.augment
    ]
    augmented = pd.concat(copies, ignore_index=True) if copies else None
    recipe = f"{args.features}" + (f" + {'/'.join(args.augment)}" if args.augment else "")
    rows = []
    for family in args.families:
        rows.append(row(f"{family} · {recipe}", family, tables, augmented, folds=args.folds))
        if args.speaker_norm:
            name = f"{family} · {recipe} · speaker-normalised"
            rows.append(row(name, family, tables, augmented, folds=args.folds, normalise=True))
    print()
    print(pd.DataFrame(rows).to_markdown(index=False))
    dev = tables["ravdess"]
    print(f"\ndev: {len(dev)} RAVDESS clips, {dev['speaker'].nunique()} actors, 8 emotions")
    for corpus in ("tess", "emodb"):
        if corpus in tables:
            table = tables[corpus]
            print(
                f"{corpus}: {len(table)} clips of {table['speaker'].nunique()} speakers "
                "(a small sample; cross-corpus figures are indicative only)"
            )
    print(f"champion configuration: {CONFIG} (family chosen by held-out UAR at training time)")


if __name__ == "__main__":
    main()
