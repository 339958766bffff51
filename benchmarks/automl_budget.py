"""Where H2O AutoML's time goes on the shipped config's training side (run by hand, not in CI).

From the repository root, after ``ser train --config experiments/ravdess_cremad.yaml`` has
extracted the features (a warm cache)::

    .venv/bin/python benchmarks/automl_budget.py                       # every variant below
    .venv/bin/python benchmarks/automl_budget.py --variants shipped --budget 600

Each variant fits the ``h2o_automl`` family on exactly the rows ``ser train`` gives it (the
config's training speakers, their augmented copies, corpora balanced) with speaker folds,
then scores the leader on the config's test speakers. It prints one line per variant (wall
time, rows and columns AutoML saw, models built per algorithm, the leader, its CV mean
per-class error, test UAR per corpus) and the leaderboard with each model's training time,
so each change's cost and gain is read side by side. Variants run in the order given, on
one JVM; run them in turns when comparing times on a machine whose speed drifts.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.config import load_config
from experiments.engines.h2o_cluster import shutdown_h2o
from experiments.families.h2o_trainer import H2OAutoMLTrainer
from experiments.training.fitting import fit_on_split, split_for
from flows.train import augmented_copies, training_table

CONFIG = Path("experiments/ravdess_cremad.yaml")
#: Options of each variant, on top of ``--budget`` and the seed.
VARIANTS: dict[str, dict[str, Any]] = {
    # the trainer as it was: H2O's own order (XGBoost first), 5 folds, every column
    "h2o-default": {"modeling_plan": [], "nfolds": 5, "max_models": 20},
    # one model per algorithm first, then the ensembles
    "plan": {"nfolds": 5, "max_models": None},
    "plan+3folds": {"nfolds": 3, "max_models": None},
    "plan+3folds+pca128": {"nfolds": 3, "max_models": None, "pca_components": 128},
    "plan+3folds+pca64": {"nfolds": 3, "max_models": None, "pca_components": 64},
    # what experiments/ravdess_cremad.yaml ships
    "shipped": {},
}


def shipped_options(config_path: Path) -> dict[str, Any]:
    """The ``h2o_automl`` options of the shipped config (without its budget)."""
    options = dict(load_config(config_path).trainers.get("h2o_automl") or {})
    options.pop("max_runtime_secs", None)
    return options


def run_variant(
    name: str, options: dict[str, Any], table, split, augmented, balance: bool
) -> tuple[dict[str, str], pd.DataFrame]:
    """Fit one variant; its summary line and its leaderboard."""
    trainer = H2OAutoMLTrainer(**options)
    started = time.perf_counter()
    evaluation = fit_on_split(trainer, table, split, augmented=augmented, balance_corpora=balance)
    seconds = time.perf_counter() - started
    board = trainer.leaderboard_
    algos = board["algo"].value_counts().to_dict()
    line = {
        "variant": name,
        "fit s": f"{seconds:.0f}",
        "AutoML s": f"{trainer.automl_seconds_:.0f}",
        "rows (unique)": f"{trainer.n_rows_} ({trainer.n_unique_rows_})",
        "columns": str(len(trainer.predictors_)),
        "models": f"{len(board)}: " + " ".join(f"{a} {n}" for a, n in sorted(algos.items())),
        "leader": str(trainer.leader_.model_id).split("_AutoML")[0],
        "CV mpce": f"{board['mean_per_class_error'].iloc[0]:.3f}",
        "test UAR": f"{evaluation.metrics['uar']:.3f}",
        **{
            f"{corpus} UAR": f"{result.metrics['uar']:.3f}"
            for corpus, result in (evaluation.by_corpus or {}).items()
        },
    }
    trainer.release()
    shown = board[["model_id", "algo", "mean_per_class_error", "training_time_ms"]].copy()
    shown["model_id"] = shown["model_id"].str.split("_AutoML").str[0]
    shown["training s"] = (shown.pop("training_time_ms") / 1000).round(1)
    return line, shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--budget", type=int, default=600, help="max_runtime_secs per variant")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = load_config(args.config)
    table = training_table(config, Path(config.data.features_dir) / "features.parquet")
    augmented = augmented_copies(config)
    split = split_for(table, config.protocol)
    print(
        f"{config.name}: {len(split.train_index)} training clips, "
        f"{0 if augmented is None else len(augmented)} augmented copies, "
        f"{len(split.test_index)} test clips; AutoML budget {args.budget} s per variant",
        flush=True,
    )
    lines = []
    try:
        for name in args.variants:
            options = shipped_options(args.config) if name == "shipped" else VARIANTS[name]
            options = {**options, "max_runtime_secs": args.budget, "seed": args.seed}
            started = time.perf_counter()
            try:
                line, board = run_variant(
                    name, options, table, split, augmented, config.data.balance_corpora
                )
            except RuntimeError as error:  # e.g. "H2O AutoML built no model"
                seconds = time.perf_counter() - started
                lines.append({"variant": name, "fit s": f"{seconds:.0f}", "models": str(error)})
                print(f"{name}: {error} ({seconds:.0f} s)", flush=True)
                continue
            lines.append(line)
            print(pd.DataFrame([line]).to_string(index=False), flush=True)
            print(board.to_string(index=False), "\n", flush=True)
    finally:
        shutdown_h2o()
    print(pd.DataFrame(lines).fillna("").to_markdown(index=False))


if __name__ == "__main__":
    main()
