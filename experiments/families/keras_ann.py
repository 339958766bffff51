"""``keras_ann``: a dense Keras network (torch backend) on the standardised feature vector.

Keras is imported only when a trainer is built or loaded (see
:mod:`experiments.families.keras_nets`), so reading an experiment file stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typing_extensions import TypedDict

from experiments.families.base import Trainer
from experiments.families.spec import ModelFamily, strict_options

#: Folder of the saved network inside a predictor folder.
KERAS_SUBDIR = "keras"


@strict_options
class KerasANNOptions(TypedDict, total=False):
    """Settings of :class:`~experiments.families.keras_nets.KerasANNTrainer` (defaults there)."""

    hidden_units: tuple[int, ...]
    dropout: float
    dropout_layers: int
    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    class_weight: str | None
    validation_fraction: float
    seed: int
    n_threads: int | None
    verbose: int


def build(**options: Any) -> Trainer:
    """An unfitted :class:`~experiments.families.keras_nets.KerasANNTrainer`."""
    from experiments.families.keras_nets import KerasANNTrainer

    return KerasANNTrainer(**options)


def save_keras(trainer: Any, directory: Path) -> dict[str, Any]:
    """Write a fitted Keras trainer (network, scaler, metadata) under ``directory``."""
    trainer.save(Path(directory) / KERAS_SUBDIR)
    return {}


def load_keras(directory: Path, meta: dict[str, Any]) -> Any:
    """The Keras trainer saved by :func:`save_keras` (either Keras family)."""
    from experiments.families.keras_nets import KerasTrainerBase

    return KerasTrainerBase.load(Path(directory) / KERAS_SUBDIR)


FAMILY = ModelFamily(
    name="keras_ann",
    summary="dense Keras network (300-50-20-10) on the standardised features",
    options=KerasANNOptions,
    build=build,
    save=save_keras,
    load=load_keras,
)
