"""``prior``: the class frequencies of the training side, whatever the clip.

The chance-level reference a results table needs beside the real families (its UAR is
1 / number of labels), and the smallest example of a family: typed options, a trainer, how
it is saved and loaded, one line in the registry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from typing_extensions import TypedDict

from experiments.families.inputs import check_labels, select_features
from experiments.families.spec import ModelFamily, strict_options

_FILE = "prior.json"


@strict_options
class PriorOptions(TypedDict, total=False):
    """Settings of :class:`PriorTrainer`."""

    seed: int
    #: ``"frequency"`` (training class shares) or ``"uniform"`` (1 / number of labels).
    strategy: str


class PriorTrainer:
    """Predicts the same probabilities for every clip: the training labels' shares."""

    family = "prior"

    def __init__(self, *, seed: int = 0, strategy: str = "frequency") -> None:
        if strategy not in ("frequency", "uniform"):
            raise ValueError(f"strategy must be 'frequency' or 'uniform', got {strategy!r}")
        self.seed = seed
        self.strategy = strategy

    def fit(
        self, features: pd.DataFrame, labels: np.ndarray, groups: np.ndarray | None = None
    ) -> PriorTrainer:
        """Count the labels (features are only checked)."""
        frame = select_features(features)
        labels, _, self.classes_ = check_labels(frame, labels, groups)
        if self.strategy == "uniform":
            self.prior_ = np.full(len(self.classes_), 1.0 / len(self.classes_))
        else:
            counts = np.array([np.sum(labels == label) for label in self.classes_], float)
            self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """The prior, once per row."""
        if not hasattr(self, "prior_"):
            raise RuntimeError("PriorTrainer is not fitted; call fit() first")
        return np.tile(self.prior_, (len(features), 1))

    def params(self) -> dict[str, Any]:
        """Strategy and seed."""
        return {"strategy": self.strategy, "seed": self.seed}


def save(trainer: Any, directory: Path) -> dict[str, Any]:
    """The prior as JSON."""
    state = {"classes": trainer.classes_, "prior": trainer.prior_.tolist(), **trainer.params()}
    (Path(directory) / _FILE).write_text(json.dumps(state))
    return {}


def load(directory: Path, meta: dict[str, Any]) -> PriorTrainer:
    """The trainer written by :func:`save`."""
    state = json.loads((Path(directory) / _FILE).read_text())
    trainer = PriorTrainer(seed=state["seed"], strategy=state["strategy"])
    trainer.classes_, trainer.prior_ = list(state["classes"]), np.asarray(state["prior"])
    return trainer


FAMILY = ModelFamily(
    name="prior",
    summary="chance reference: the training labels' shares for every clip",
    options=PriorOptions,
    build=PriorTrainer,
    save=save,
    load=load,
    default=False,
)
