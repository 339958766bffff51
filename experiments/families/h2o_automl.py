"""``h2o_automl``: H2O AutoML ranked by speaker-wise cross-validation, served as a MOJO.

The trainer (:mod:`experiments.families.h2o_trainer`) needs an H2O cluster; the saved model
is the leader's MOJO with ``h2o-genmodel.jar``, scored in-process without a cluster
(:mod:`experiments.serving.mojo_scorer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from typing_extensions import TypedDict

from experiments.families.base import Trainer
from experiments.families.projection import Projection
from experiments.families.spec import ModelFamily, strict_options


@strict_options
class H2OAutoMLOptions(TypedDict, total=False):
    """Settings of :class:`~experiments.families.h2o_trainer.H2OAutoMLTrainer` (defaults there)."""

    max_runtime_secs: int
    max_models: int | None
    seed: int
    sort_metric: str
    nfolds: int
    exclude_algos: list[str] | None
    balance_classes: bool
    h2o_url: str | None
    max_mem_size: str
    modeling_plan: list[str | list[str | list[str]]] | None
    max_runtime_secs_per_model: int
    pca_components: int | None


#: The projection of the feature columns, when the trainer fitted one.
PROJECTION_FILE = "projection.npz"


def build(**options: Any) -> Trainer:
    """An unfitted :class:`~experiments.families.h2o_trainer.H2OAutoMLTrainer`."""
    from experiments.families.h2o_trainer import H2OAutoMLTrainer

    return H2OAutoMLTrainer(**options)


def save_mojo(trainer: Any, directory: Path) -> dict[str, Any]:
    """Export the leader's MOJO and the genmodel jar; their paths go into ``predictor.json``."""
    directory = Path(directory)
    mojo = trainer.export_mojo(directory / "mojo")
    projection = {}
    if getattr(trainer, "projection_", None) is not None:
        trainer.projection_.save(directory / PROJECTION_FILE)
        projection = {"projection": PROJECTION_FILE}
    return {
        **projection,
        "mojo": str(mojo.relative_to(directory)),
        "genmodel_jar": str(Path(trainer.genmodel_jar_path_).relative_to(directory)),
        "mojo_model_id": trainer.mojo_model_id_,
        "mojo_non_predictors": list(getattr(trainer, "non_predictor_columns", ())),
    }


def load_mojo(directory: Path, meta: dict[str, Any]) -> Any:
    """An in-process MOJO scorer whose columns follow ``meta["classes"]``."""
    from experiments.serving.mojo_scorer import MojoScorer

    directory = Path(directory)
    scorer = MojoScorer(
        directory / meta["mojo"],
        directory / meta["genmodel_jar"],
        non_predictors=tuple(meta.get("mojo_non_predictors", ())),
    )
    projection = Projection.load(directory / meta["projection"]) if "projection" in meta else None
    return ReorderedScorer(scorer, list(meta["classes"]), projection)


@dataclass
class ReorderedScorer:
    """A MOJO scorer whose columns are put into the canonical label order; rows go through
    the trainer's projection first when it had one."""

    scorer: Any
    classes: list[str]
    projection: Projection | None = None

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        if self.projection is not None:
            features = self.projection.transform(features)
        domain = [str(label) for label in self.scorer.classes]
        order = [domain.index(label) for label in self.classes]
        return self.scorer.predict_proba(features)[:, order]


def release(trainer: Any) -> None:
    """Delete the run's AutoML project and models from the cluster."""
    trainer.release()


def leaderboard(trainer: Any) -> dict[str, pd.DataFrame]:
    """The AutoML leaderboard, logged beside the run."""
    board = getattr(trainer, "leaderboard_", None)
    return {"h2o_leaderboard": board} if isinstance(board, pd.DataFrame) else {}


FAMILY = ModelFamily(
    name="h2o_automl",
    summary="H2O AutoML (GBM, XGBoost, GLM, DRF, stacked ensembles), leader served as a MOJO",
    options=H2OAutoMLOptions,
    build=build,
    save=save_mojo,
    load=load_mojo,
    session_companion=False,
    release=release,
    tables=leaderboard,
    budget_option="max_runtime_secs",
)
