"""The promotion flow: register the best candidate of a training run, guard the champion."""

from __future__ import annotations

import mlflow
from prefect import flow, get_run_logger

from experiments.config import load_config
from experiments.tracking.registry import PromotionDecision, PromotionError, promote
from experiments.tracking.runs import configure_tracking


def latest_training_run(experiment: str, config_name: str) -> str:
    """The id of the newest finished parent training run of ``config_name``.

    Runs still RUNNING (in progress, or left so by a killed ``ser train``) and failed ones
    are passed over.
    """
    runs = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=(
            f"tags.role = 'parent' and tags.experiment_config = '{config_name}' "
            "and attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        raise PromotionError(
            f"no finished training run of {config_name!r} in experiment {experiment!r}; "
            "run `ser train` first"
        )
    return runs[0].info.run_id


@flow(name="promote-model")
def promote_model(
    config_path: str, parent_run_id: str | None = None, tracking_uri: str | None = None
) -> PromotionDecision:
    """Promote the best model of ``parent_run_id`` (default: the config's latest training run)."""
    logger = get_run_logger()
    config = load_config(config_path)
    configure_tracking(tracking_uri)
    run_id = parent_run_id or latest_training_run(config.experiment, config.name)
    decision = promote(run_id, model_name=config.model_name, metric=config.promotion_metric)
    logger.info(
        "%s v%s (%s): %s", config.model_name, decision.version, decision.family, decision.reason
    )
    return decision
