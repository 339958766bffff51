"""The training flow: extract (incrementally), then fit and log every model family in MLflow.

One parent MLflow run per invocation, one child run per family.  A family that fails is
recorded as a FAILED child run with its error; the others still finish and log.
"""

from __future__ import annotations

import base64
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from experiments.config import ExperimentConfig, load_config
from experiments.evaluation.splits import (
    SPEAKER_INDEPENDENT,
    Split,
    grouping_notes,
    require_splittable_labels,
)
from experiments.families import CV_OVERRIDES, get_family
from experiments.families.predictors import SESSION_SUBDIR, load_predictor, save_predictor
from experiments.serving.emotion_model import TELEPHONE_BAND_KEY
from experiments.tracking.runs import (
    configure_tracking,
    ensure_experiment,
    flatten_params,
    log_dataset,
    log_evaluation,
    log_served_model,
    provenance,
)
from experiments.training.fitting import (
    build_trainer,
    evaluate_by_corpus,
    family_columns,
    fit_on_split,
    label_distribution,
    release,
    split_for,
    train_family,
)
from flows.extract import ExtractionSummary, extract_features
from flows.user_console import console
from ser_features import quality
from ser_features.clip_source import read_clip_bytes
from ser_features.encoders import carry_encoder
from ser_features.extraction import content_digest
from ser_features.feature_sets.ssl import encoder_params, encoders_of
from ser_features.feature_table import FEATURES_FILE, feature_columns, read_feature_table


@dataclass
class FamilyReport:
    """The outcome of one family's child run."""

    family: str
    run_id: str
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    model_uri: str | None = None
    error: str | None = None


@dataclass
class TrainingReport:
    """The outcome of one training invocation."""

    parent_run_id: str
    experiment_id: str
    protocol: str
    families: list[FamilyReport]
    extraction: ExtractionSummary | None = None

    def best(self, metric: str) -> FamilyReport | None:
        """The finished family with the highest ``metric`` (None if all failed); pass the
        config's ``promotion_metric``, the one promotion decides by."""
        finished = [f for f in self.families if f.status == "FINISHED" and metric in f.metrics]
        return max(finished, key=lambda f: f.metrics[metric], default=None)


def protocol_label(split: Split) -> str:
    """A short, honest description of the protocol for run names."""
    if split.protocol == "random_stratified":
        return "RANDOM split (same speakers both sides)"
    if split.protocol == "cross_corpus":
        return "cross-corpus"
    return f"speaker-independent, test {len(split.test_speakers)} speakers"


def _example_output(classes: list[str]) -> pd.DataFrame:
    uniform = 1.0 / len(classes)
    segment = {"start": 0.0, "end": 3.0, "emotion": classes[0], "confidence": uniform}
    return pd.DataFrame(
        {
            "emotion": [classes[0]],
            "confidence": [uniform],
            "probabilities": [dict.fromkeys(classes, uniform)],
            "segments": [[segment]],
            "speaker_normalised": [False],
            "quality": [dict(quality.EXAMPLE)],
        }
    )


@task(name="train-family", cache_policy=NO_CACHE)
def train_and_log_family(
    family: str,
    config: ExperimentConfig,
    table: pd.DataFrame,
    features_path: str,
    dataset_digest: str,
    parent_run_id: str,
    experiment_id: str,
    augmented: pd.DataFrame | None = None,
) -> FamilyReport:
    """Fit one family under the configured protocol and log everything in a child run."""
    params = dict(config.trainers.get(family) or {})
    cv_params = params.pop(CV_OVERRIDES, None)
    split = split_for(table, config.protocol)
    short = protocol_label(split)
    tags = {
        "model_family": family,
        "feature_set": config.data.features,
        "protocol": split.protocol,
        "experiment_config": config.name,
    }
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"{family} · {config.data.features} · {short}",
        parent_run_id=parent_run_id,
        nested=True,
        tags=tags,
    ) as run:
        try:
            started = time.perf_counter()
            result = train_family(
                family,
                params,
                table,
                config.protocol,
                cv_params=cv_params,
                augmented=augmented,
                normalise=config.data.normalise,
                balance_corpora=config.data.balance_corpora,
            )
            fit_seconds = time.perf_counter() - started
            fitted_params = flatten_params(result.trainer.params(), prefix="model.")
            mlflow.log_params(fitted_params)
            mlflow.log_params(_protocol_params(config, split, table))
            mlflow.log_params({"features_path": str(Path(features_path).resolve())})
            mlflow.log_params(encoder_params(config.data.features))
            mlflow.log_params(provenance())
            tested = table.iloc[split.test_index]
            mlflow.log_dict(
                {
                    "paths": tested["path"].tolist(),
                    "emotions": tested["emotion"].tolist(),
                    "labels": list(split.labels),
                },
                "split/test_paths.json",
            )
            log_dataset(Path(features_path), table, name=config.name, digest=dataset_digest)
            with tempfile.TemporaryDirectory() as scratch:
                predictor_dir = save_predictor(
                    result.trainer,
                    Path(scratch) / "predictor",
                    feature_set=config.data.features,
                    normaliser=result.normaliser,
                )
                saved_params = flatten_params(result.trainer.params(), prefix="model.")
                # what saving decided, e.g. which AutoML model became the MOJO
                mlflow.log_params({k: v for k, v in saved_params.items() if k not in fitted_params})
                for identity in encoders_of(config.data.features):
                    carry_encoder(identity, predictor_dir)  # served without the hub
                if family in config.serving.session_model:
                    _add_session_companion(family, params, config, table, split, predictor_dir)
                served = load_predictor(predictor_dir)
                test = table.iloc[split.test_index]
                if split.labels:
                    test = test[test["emotion"].isin(split.labels)]
                proba = served.predict_proba(test[feature_columns(table)])
                evaluation = evaluate_by_corpus(test, proba, served.classes)
                log_evaluation(evaluation, title=f"{family} · {short}")
                mlflow.log_metrics({**result.cv_metrics, "fit_seconds": fit_seconds})
                _log_tables(result.trainer)
                example = base64.b64encode(read_clip_bytes(test["path"].iloc[0])).decode()
                model_uri = log_served_model(
                    predictor_dir,
                    example_audio_b64=example,
                    example_output=_example_output(served.classes),
                    model_config={
                        **config.serving.model_config_dict(),
                        TELEPHONE_BAND_KEY: quality.telephone_band(
                            table["original_sample_rate"].iloc[split.train_index]
                        ),
                    },
                )
            mlflow.set_tag("served_model_uri", model_uri)
            uar = evaluation.metrics["uar"]
            mlflow.set_tag(
                "mlflow.runName", f"{family} · {config.data.features} · {short} · UAR {uar:.3f}"
            )
            release(result.trainer)
            return FamilyReport(
                family, run.info.run_id, "FINISHED", dict(evaluation.metrics), model_uri
            )
        except Exception as exc:
            mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
            mlflow.log_text(traceback.format_exc(), "error.txt")
            raise


def _add_session_companion(
    family: str,
    params: dict[str, Any],
    config: ExperimentConfig,
    table: pd.DataFrame,
    split: Split,
    predictor_dir: Path,
) -> None:
    """Fit ``family`` on speaker-normalised features and save it beside the per-clip model.

    Its held-out scores (test speakers normalised by their own unlabelled clips) are logged
    as ``session_*`` metrics; the served model uses it for requests that name a session.
    """
    params = get_family(family).session_options(params)
    trainer = build_trainer(family, params, seed=config.protocol.seed)
    evaluation = fit_on_split(
        trainer,
        table,
        split,
        normalise_speakers=True,
        columns=family_columns(params, table),
        balance_corpora=config.data.balance_corpora,
    )
    mlflow.log_metrics({f"session_{k}": v for k, v in evaluation.metrics.items()})
    save_predictor(trainer, predictor_dir / SESSION_SUBDIR, feature_set=config.data.features)
    release(trainer)
    get_run_logger().info(
        "%s speaker-normalised companion: held-out UAR %.3f", family, evaluation.metrics["uar"]
    )


def _protocol_params(config: ExperimentConfig, split: Split, table: pd.DataFrame) -> dict[str, str]:
    return flatten_params(
        {
            "feature_set": config.data.features,
            "protocol": split.protocol,
            "protocol_description": split.description,
            "test_speakers": ",".join(split.test_speakers),
            "seed": config.protocol.seed,
            "cv_folds": config.protocol.cv_folds,
            "augment": ",".join(config.data.augment) or "none",
            "normalise": config.data.normalise,
            "balance_corpora": config.data.balance_corpora,
            "corpora": ",".join(sorted(set(table["corpus"].astype(str)))),
            "grouping": grouping_notes(table)[0],
            "n_train": len(split.train_index),
            "n_test": len(split.test_index),
        }
    )


def _log_tables(trainer: Any) -> None:
    """Log the family's extra tables (e.g. H2O's leaderboard) as JSON and CSV."""
    for stem, table in get_family(trainer.family).tables(trainer).items():
        mlflow.log_table(table, artifact_file=f"{stem}.json")
        mlflow.log_text(table.to_csv(index=False), f"{stem}.csv")


@flow(name="train-models")
def train_models(
    config_path: str,
    data_folders: list[str] | None = None,
    tracking_uri: str | None = None,
    families: list[str] | None = None,
) -> TrainingReport:
    """Extract features for the config's data, then train and log every configured family."""
    logger = get_run_logger()
    config = load_config(config_path)
    if data_folders:
        config = config.with_data_folders(data_folders)
    if not config.data.folders:
        raise ValueError(f"{config_path}: no data folders; set data.folders or pass --data")
    configure_tracking(tracking_uri)
    experiment_id = ensure_experiment(config.experiment)
    extraction = extract_features(
        data_dirs=list(config.data.folders),
        out_dir=config.data.features_dir,
        feature_set=config.data.features,
    )
    features_path = Path(config.data.features_dir) / FEATURES_FILE
    table = training_table(config, features_path)
    augmented = augmented_copies(config)
    digest = content_digest(features_path)
    split = split_for(table, config.protocol)
    grouping, *warnings = grouping_notes(table)
    logger.info(grouping)
    console.print(grouping)
    for warning in warnings:
        logger.warning(warning)
    chosen = families or list(config.trainers)
    reports: list[FamilyReport] = []
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"{config.name} · {config.data.features} · {protocol_label(split)}",
        tags={"experiment_config": config.name, "protocol": split.protocol, "role": "parent"},
    ) as parent:
        mlflow.log_params(_protocol_params(config, split, table))
        mlflow.log_params({"config_file": str(config.source), "families": ",".join(chosen)})
        mlflow.log_params(encoder_params(config.data.features))
        mlflow.log_params(provenance())
        mlflow.log_dict(
            {
                "train_labels": label_distribution(table, split.train_index),
                "test_labels": label_distribution(table, split.test_index),
            },
            "split_summary.json",
        )
        mlflow.log_metric("extracted_clips", extraction.extracted)
        if config.source and Path(config.source).exists():
            mlflow.log_artifact(config.source, artifact_path="config")
        log_dataset(features_path, table, name=config.name, digest=digest)
        for number, family in enumerate(chosen, start=1):
            logger.info("training %s", family)
            started = time.monotonic()
            step = f"training {family} ({number}/{len(chosen)}){_budget_note(config, family)}"
            with console.status(f"{step}..."):
                state = train_and_log_family(
                    family,
                    config,
                    table,
                    str(features_path),
                    digest,
                    parent.info.run_id,
                    experiment_id,
                    augmented,
                    return_state=True,
                )
            if state.is_completed():
                reports.append(state.result())
            else:
                reports.append(_failed_report(family, parent.info.run_id, state))
                logger.error("%s failed: %s", family, reports[-1].error)
            console.print(f"{step}: {_outcome(reports[-1])} [{time.monotonic() - started:.0f} s]")
        _log_comparison(reports, config.promotion_metric)
    return TrainingReport(parent.info.run_id, experiment_id, split.protocol, reports, extraction)


def training_table(config: ExperimentConfig, features_path: Path) -> pd.DataFrame:
    """The feature table with the config's label mapping applied, checked for a split.

    Raises ``ValueError`` naming the problem when no clip remains or, for a
    speaker-independent protocol, when a label comes from a single speaker group.
    """
    table, _, _ = read_feature_table(features_path)
    table = config.data.labels.apply(table)
    if table.empty:
        raise ValueError(
            f"no clips to train on in {features_path} after data.labels; check the data "
            "(ser data check) and the label mapping"
        )
    if config.protocol.kind == SPEAKER_INDEPENDENT:
        require_splittable_labels(table)
    return table


def _budget_note(config: ExperimentConfig, family: str) -> str:
    """``, AutoML budget N s`` for families that search for a time budget."""
    option = get_family(family).budget_option
    budget = config.trainers.get(family, {}).get(option) if option else None
    return f", AutoML budget {budget} s" if budget else ""


def _outcome(report: FamilyReport) -> str:
    """``UAR 0.734`` or ``failed``, for the progress line."""
    uar = report.metrics.get("uar")
    return "failed" if report.status != "FINISHED" or uar is None else f"UAR {uar:.3f}"


def augmented_copies(config: ExperimentConfig) -> pd.DataFrame | None:
    """Extract (or reuse) the configured augmentations of every clip; ``None`` without any.

    The copies are only joined to the training side of each split, by
    :func:`experiments.training.fitting.fit_on_split`.
    """
    if not config.data.augment:
        return None
    tables = []
    for name in config.data.augment:
        out_dir = config.data.augmented_dir(name)
        extract_features(
            data_dirs=list(config.data.folders),
            out_dir=out_dir,
            feature_set=config.data.features,
            augmentation=name,
        )
        copies, _, _ = read_feature_table(Path(out_dir) / FEATURES_FILE)
        tables.append(config.data.labels.apply(copies))
    return pd.concat(tables, ignore_index=True)


def _failed_report(family: str, parent_run_id: str, state: Any) -> FamilyReport:
    query = f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.model_family = '{family}'"
    runs = mlflow.search_runs(
        filter_string=query,
        search_all_experiments=True,
        output_format="list",
    )
    run_id = runs[0].info.run_id if runs else ""
    return FamilyReport(family, run_id, "FAILED", error=str(state.message))


def _log_comparison(reports: list[FamilyReport], metric: str) -> None:
    """The families' table, and the best family by ``metric`` (the one promotion uses)."""
    from experiments.evaluation.report import results_table

    if not reports:
        return
    mlflow.log_text(results_table(reports).to_markdown(index=False), "comparison.md")
    finished = [r for r in reports if r.status == "FINISHED" and metric in r.metrics]
    if finished:
        best = max(finished, key=lambda r: r.metrics[metric])
        mlflow.set_tags({"best_family": best.family, "best_run_id": best.run_id})
        mlflow.log_metrics({f"best_{metric}": best.metrics[metric]})
