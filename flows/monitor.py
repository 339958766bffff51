"""The monitor flow: compare a window of logged answers with the champion's reference, report,
and start a retrain when the data drifted."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import mlflow
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from experiments.monitoring.drift import DRIFT_SHARE_LIMIT, DriftReport
from experiments.monitoring.reference import champion_reference
from experiments.monitoring.report_html import report_html
from experiments.monitoring.window import logged_window, window_drift
from experiments.tracking.runs import configure_tracking, ensure_experiment

MONITOR_EXPERIMENT = "ser-monitor"


@dataclass
class MonitorResult:
    """A monitoring run: its report, the MLflow run, and whether it started a retrain."""

    report: DriftReport
    run_id: str
    retrained: bool = False


@flow(name="monitor")
def monitor_flow(
    model_name: str,
    prediction_log: str,
    since: datetime | None = None,
    until: datetime | None = None,
    json_path: str | None = None,
    html_path: str | None = None,
    share_limit: float = DRIFT_SHARE_LIMIT,
    retrain_config: str | None = None,
    tracking_uri: str | None = None,
) -> MonitorResult:
    """Drift of the answers logged in ``prediction_log`` between ``since`` and ``until``
    against ``model_name@champion``; logged to MLflow (experiment ``ser-monitor``) and as a
    Prefect artifact. With ``retrain_config``, drift starts the retrain flow on it."""
    logger = get_run_logger()
    configure_tracking(tracking_uri)
    reference = champion_reference(model_name)
    window = logged_window(prediction_log, model_name, since=since, until=until)
    report = window_drift(window, reference, share_limit=share_limit)
    summary = report.summary()
    page = report_html(report, title=f"{model_name} v{reference.version}: {len(window)} answers")
    for path, text in ((json_path, json.dumps(summary, indent=2)), (html_path, page)):
        if path:
            Path(path).write_text(text)
    with mlflow.start_run(
        experiment_id=ensure_experiment(MONITOR_EXPERIMENT),
        run_name=f"monitor {model_name} v{reference.version}",
        tags={"model_name": model_name, "champion_version": reference.version},
    ) as run:
        mlflow.log_metrics(
            {
                "n_predictions": report.n_predictions,
                "drifted_feature_share": report.drifted_feature_share,
                "drift_detected": float(report.drift_detected),
                "label_shift": report.label_shift,
                "mean_confidence": report.mean_confidence,
            }
        )
        with tempfile.TemporaryDirectory() as scratch:
            (Path(scratch) / "monitor.json").write_text(json.dumps(summary, indent=2))
            (Path(scratch) / "monitor.html").write_text(page)
            mlflow.log_artifacts(scratch, "monitor")
    create_markdown_artifact(
        key="monitor-summary",
        markdown=_markdown(model_name, reference.version, summary),
        description=f"drift of {model_name}'s answers",
    )
    logger.info(
        "%s answers, %.0f%% of features drifted: %s",
        report.n_predictions,
        100 * report.drifted_feature_share,
        "drift" if report.drift_detected else "no drift",
    )
    retrained = False
    if report.drift_detected and retrain_config:
        from flows.retrain import retrain_flow

        logger.warning("drift detected: retraining with %s", retrain_config)
        retrain_flow(config_path=retrain_config, tracking_uri=tracking_uri)
        retrained = True
    return MonitorResult(report, run.info.run_id, retrained)


def _markdown(model_name: str, version: str, summary: dict) -> str:
    verdict = "**drift detected**" if summary["drift_detected"] else "no drift"
    return "\n".join(
        [
            f"# Monitor: {model_name} v{version}",
            "",
            f"{summary['n_predictions']} answers ({summary['n_refused']} refused): {verdict}; "
            f"{summary['drifted_feature_share']:.0%} of monitored features drifted, label "
            f"shift {summary['label_shift']:.3f}, mean confidence "
            f"{summary['mean_confidence']:.3f} (champion on its test clips: "
            f"{summary['reference_mean_confidence']:.3f}).",
        ]
    )
