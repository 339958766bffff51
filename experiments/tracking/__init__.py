"""MLflow: where runs are stored and what they record (:mod:`~experiments.tracking.runs`), the
registry's promotion rules (:mod:`~experiments.tracking.registry`), and the UI command
(:mod:`~experiments.tracking.mlflow_ui`)."""

from experiments.tracking.registry import CHALLENGER, CHAMPION, PromotionDecision, promote
from experiments.tracking.runs import DEFAULT_STORE, configure_tracking, log_served_model

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DEFAULT_STORE",
    "PromotionDecision",
    "configure_tracking",
    "log_served_model",
    "promote",
]
