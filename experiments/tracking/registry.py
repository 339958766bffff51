"""Registry rules: register the best candidate as ``@challenger``; move ``@champion`` only if
it is better on the same test clips.

Like is compared with like: the current champion is re-scored on the challenger's own test
split (same clips, same speakers), so a change of data or protocol can never flatter either
side.  Only a finished training run is promoted (a run still RUNNING was killed or is still
going), and a new version is loaded and made to score a test clip, exactly as it will be
served, before any alias points at it.  Setting the ``champion`` alias is the very last step,
so any failure (or a ``kill -9``) before it leaves the champion where it was.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from experiments.evaluation.metrics import evaluate
from experiments.families.predictors import load_predictor
from ser_features.clip_source import read_clip_bytes
from ser_features.feature_table import feature_columns, read_feature_table

CHAMPION = "champion"
CHALLENGER = "challenger"


class PromotionError(RuntimeError):
    """Nothing could be promoted; the champion is unchanged."""


@dataclass(frozen=True)
class Candidate:
    """A finished child run of a training invocation, and its score."""

    run_id: str
    family: str
    metric: float
    model_uri: str


@dataclass(frozen=True)
class PromotionDecision:
    """What promotion did, and why."""

    model_name: str
    version: str
    family: str
    metric: str
    challenger_score: float
    champion_score: float | None
    champion_version: str | None
    promoted: bool
    reason: str


def best_candidate(parent_run_id: str, *, metric: str = "uar") -> Candidate:
    """The finished child run of ``parent_run_id`` with the highest ``metric``."""
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
        output_format="list",
    )
    finished = [
        run
        for run in runs
        if run.info.status == "FINISHED"
        and metric in run.data.metrics
        and "served_model_uri" in run.data.tags
    ]
    if not finished:
        raise PromotionError(
            f"run {parent_run_id} has no finished model with metric {metric!r}; "
            "nothing to promote (check the training run's failed children)"
        )
    best = max(finished, key=lambda run: run.data.metrics[metric])
    return Candidate(
        run_id=best.info.run_id,
        family=best.data.tags.get("model_family", "unknown"),
        metric=float(best.data.metrics[metric]),
        model_uri=best.data.tags["served_model_uri"],
    )


def score_on_clips(model_uri: str, test: pd.DataFrame, *, feature_set: str, metric: str) -> float:
    """Score the predictor inside ``model_uri`` on the feature rows ``test``.

    ``feature_set`` names the features in ``test``; a model built on another feature set is
    scored from the clips' audio instead.
    """
    local = Path(mlflow.artifacts.download_artifacts(model_uri))
    predictor = load_predictor(local / "artifacts" / "predictor")
    if predictor.feature_set == feature_set:
        proba = predictor.predict_proba(test[feature_columns(test)])
    else:
        proba = _score_audio(model_uri, test["path"].tolist(), predictor.classes)
    return float(evaluate(test["emotion"].to_numpy(), proba, predictor.classes).metrics[metric])


def run_feature_table(run: mlflow.entities.Run) -> pd.DataFrame:
    """The feature table a run trained and tested on; :class:`PromotionError` when it is not
    on this machine."""
    features_path = run.data.params.get("features_path")
    if not features_path or not Path(features_path).exists():
        raise PromotionError(
            f"run {run.info.run_id}: its feature table {features_path!r} is not available; "
            "re-run training on this machine first"
        )
    return read_feature_table(features_path)[0]


def tested_clips(run: mlflow.entities.Run, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The feature rows a run was tested on: its feature table (``table`` when already read),
    filtered by its logged test paths (and shared labels, for cross-corpus splits)."""
    table = run_feature_table(run) if table is None else table
    split_file = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/split/test_paths.json")
    test = table[table["path"].isin(set(split_file["paths"]))]
    if "emotions" in split_file:  # the labels as the run saw them (after data.labels)
        emotion_of = dict(zip(split_file["paths"], split_file["emotions"], strict=True))
        test = test.assign(emotion=test["path"].map(emotion_of))
    labels = split_file.get("labels")
    if labels:
        test = test[test["emotion"].isin(labels)]
    if test.empty:
        raise PromotionError(f"the test clips of run {run.info.run_id} are no longer available")
    return test


def _score_audio(model_uri: str, paths: list[str], classes: list[str]) -> np.ndarray:
    model = mlflow.pyfunc.load_model(model_uri)
    audio = [base64.b64encode(read_clip_bytes(p)).decode() for p in paths]
    output = model.predict(pd.DataFrame({"audio": audio}))
    failed = [
        f"{path}: {error}" for path, error in zip(paths, output["error"], strict=True) if error
    ]
    if failed:
        raise PromotionError(f"{model_uri} could not score {len(failed)} test clips: {failed[0]}")
    return np.array([[row[label] for label in classes] for row in output["probabilities"]])


def promote(parent_run_id: str, *, model_name: str, metric: str = "uar") -> PromotionDecision:
    """Register the best candidate of a training run; make it champion only if it is better."""
    client = MlflowClient()
    require_finished(parent_run_id)
    candidate = best_candidate(parent_run_id, metric=metric)
    run = mlflow.get_run(candidate.run_id)
    test = tested_clips(run)
    version = str(mlflow.register_model(candidate.model_uri, model_name).version)
    verify_version(client, model_name, version, test["path"].iloc[0])
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    champion = _current_champion(client, model_name)
    feature_set = run.data.params.get("feature_set", "")
    challenger_score = score_on_clips(
        candidate.model_uri, test, feature_set=feature_set, metric=metric
    )
    if champion is None:
        promoted, champion_score, reason = True, None, "first model: no champion yet"
    else:
        champion_uri = f"models:/{model_name}/{champion.version}"
        champion_score = score_on_clips(champion_uri, test, feature_set=feature_set, metric=metric)
        promoted = challenger_score > champion_score
        verdict = "beats" if promoted else "does not beat"
        reason = (
            f"challenger v{version} {metric}={challenger_score:.4f} {verdict} champion "
            f"v{champion.version} {metric}={champion_score:.4f} on the same "
            f"{len(test)} test clips"
        )
    decision = PromotionDecision(
        model_name=model_name,
        version=str(version),
        family=candidate.family,
        metric=metric,
        challenger_score=challenger_score,
        champion_score=champion_score,
        champion_version=None if champion is None else str(champion.version),
        promoted=promoted,
        reason=reason,
    )
    _record(client, decision, candidate)
    if promoted:
        client.set_registered_model_alias(model_name, CHAMPION, version)
    return decision


def require_finished(parent_run_id: str) -> None:
    """Refuse a training run that did not finish (still running, failed, or killed)."""
    status = mlflow.get_run(parent_run_id).info.status
    if status != "FINISHED":
        raise PromotionError(
            f"training run {parent_run_id} is {status}, not FINISHED (still training, failed, "
            "or killed); only a finished training run is promoted"
        )


def verify_version(client: MlflowClient, model_name: str, version: str, clip: str | Path) -> None:
    """Load version ``version``'s files as the server will and score ``clip`` (a file, or a
    clip key naming a span of one) with them.

    A version that cannot (its artifacts incomplete, its code or predictor missing) is tagged
    ``promotion.decision = rejected`` and :class:`PromotionError` is raised: no alias moves.
    """
    source = client.get_model_version_download_uri(model_name, version)  # registry errors pass
    try:
        model = mlflow.pyfunc.load_model(source)
        audio = base64.b64encode(read_clip_bytes(str(clip))).decode()
        probabilities = model.predict(pd.DataFrame({"audio": [audio]}))["probabilities"].iloc[0]
        total = float(sum(probabilities.values()))
        if not np.isclose(total, 1.0, atol=1e-3):
            raise ValueError(f"its probabilities sum to {total:.4f}, not 1")
    except Exception as exc:  # any failure to load or score means: not servable
        client.set_model_version_tag(
            model_name, version, "promotion.decision", "rejected: does not load and score"
        )
        raise PromotionError(
            f"{model_name} v{version} does not load and score a test clip "
            f"({type(exc).__name__}: {exc}); no alias was moved"
        ) from exc


def _current_champion(client: MlflowClient, model_name: str):
    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None


def _record(client: MlflowClient, decision: PromotionDecision, candidate: Candidate) -> None:
    """Write the comparison into the new version's tags and description."""
    tags = {
        "model_family": decision.family,
        "source_run_id": candidate.run_id,
        "promotion.metric": decision.metric,
        "promotion.challenger_score": f"{decision.challenger_score:.6f}",
        "promotion.champion_score": (
            "none" if decision.champion_score is None else f"{decision.champion_score:.6f}"
        ),
        "promotion.champion_version": decision.champion_version or "none",
        "promotion.decision": "promoted" if decision.promoted else "kept champion",
    }
    for key, value in tags.items():
        client.set_model_version_tag(decision.model_name, decision.version, key, value)
    client.update_model_version(
        decision.model_name,
        decision.version,
        description=f"{decision.family}: {decision.reason}.",
    )
