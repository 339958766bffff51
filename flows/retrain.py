"""Scheduled retraining: extract (incrementally) -> train -> promote, one at a time per store.

Each run publishes a Prefect markdown artifact with this run's leaderboard, the deltas
against the current champion, whether it promoted, and the MLflow run id.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.states import State

from experiments.config import load_config
from experiments.evaluation.report import results_table, shown_table
from experiments.tracking.registry import PromotionDecision, PromotionError, promote
from experiments.tracking.runs import configure_tracking
from flows.train import TrainingReport, train_models


class RetrainBusyError(RuntimeError):
    """Another retrain holds the store; this one did nothing."""


@contextmanager
def store_lock(tracking_uri: str) -> Iterator[Path]:
    """Hold an exclusive, non-blocking lock for ``tracking_uri`` (released on exit or crash)."""
    key = hashlib.sha1(tracking_uri.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"ser-retrain-{key}.lock"
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RetrainBusyError(
                f"another retrain is running on {tracking_uri}; this run changed nothing "
                "(it will be picked up by the next scheduled run)"
            ) from None
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield path


def _transient(task: object, task_run: object, state: State) -> bool:
    """Retry registry failures, but not "nothing to promote"."""
    return not isinstance(state.result(raise_on_failure=False), PromotionError)


@task(name="promote-champion", retries=2, retry_delay_seconds=5, retry_condition_fn=_transient)
def promote_champion(parent_run_id: str, model_name: str, metric: str) -> PromotionDecision:
    """Registry writes can fail transiently (a remote server, a locked sqlite file): retried."""
    return promote(parent_run_id, model_name=model_name, metric=metric)


@dataclass(frozen=True)
class RetrainReport:
    """What one retrain did."""

    training: TrainingReport
    decision: PromotionDecision

    @property
    def extracted(self) -> int:
        """Clips described in this run (0 when no audio arrived)."""
        return self.training.extraction.extracted if self.training.extraction else 0


def summary_markdown(report: RetrainReport, metric: str) -> str:
    """The markdown artifact: leaderboard, deltas against the champion, the decision."""
    decision = report.decision
    lines = [
        f"# Retrain: {decision.model_name} v{decision.version}",
        "",
        f"MLflow parent run: `{report.training.parent_run_id}` "
        f"(experiment `{report.training.experiment_id}`), protocol "
        f"`{report.training.protocol}`, clips described this run: {report.extracted}.",
        "",
    ]
    ranked = sorted(report.training.families, key=lambda f: -f.metrics.get(metric, float("-inf")))
    shown = shown_table(results_table(ranked), run_id_header="MLflow run")
    shown["MLflow run"] = "`" + shown["MLflow run"] + "`"
    lines += [
        "| " + " | ".join(shown.columns) + " |",
        "|" + "---|" * len(shown.columns),
        *("| " + " | ".join(row) + " |" for row in shown.itertuples(index=False)),
    ]
    if decision.champion_score is None:
        delta = "no previous champion"
    else:
        change = decision.challenger_score - decision.champion_score
        delta = (
            f"{metric}: challenger {decision.challenger_score:.4f} vs champion "
            f"v{decision.champion_version} {decision.champion_score:.4f} ({change:+.4f})"
        )
    verdict = "**promoted to @champion**" if decision.promoted else "champion kept"
    lines += ["", f"Best candidate: {decision.family}. {delta}. Decision: {verdict}.", ""]
    lines.append(decision.reason)
    return "\n".join(lines)


@flow(name="retrain")
def retrain_flow(
    config_path: str, data_folders: list[str] | None = None, tracking_uri: str | None = None
) -> RetrainReport:
    """Extract new audio, train every family, promote the best if it beats the champion."""
    logger = get_run_logger()
    config = load_config(config_path)
    uri = configure_tracking(tracking_uri)
    with store_lock(uri):
        training = train_models(
            config_path=config_path, data_folders=data_folders, tracking_uri=uri
        )
        decision = promote_champion(
            training.parent_run_id, config.model_name, config.promotion_metric
        )
        report = RetrainReport(training, decision)
        create_markdown_artifact(
            key="retrain-summary",
            markdown=summary_markdown(report, config.promotion_metric),
            description=f"retrain of {config.name}",
        )
        with mlflow.start_run(run_id=training.parent_run_id):
            mlflow.set_tags(
                {"retrain.promoted": str(decision.promoted), "retrain.version": decision.version}
            )
    logger.info("%s", decision.reason)
    return report
