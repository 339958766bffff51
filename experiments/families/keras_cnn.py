"""``keras_cnn``: a Keras 1D-CNN (torch backend) over the standardised feature vector."""

from __future__ import annotations

from typing import Any

from typing_extensions import TypedDict

from experiments.families.base import Trainer
from experiments.families.keras_ann import load_keras, save_keras
from experiments.families.spec import ModelFamily, strict_options


@strict_options
class KerasCNNOptions(TypedDict, total=False):
    """Settings of :class:`~experiments.families.keras_nets.KerasCNNTrainer` (defaults there)."""

    filters: tuple[int, ...]
    kernel_size: int
    dense_units: int
    pooling: str
    dropout: float
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
    """An unfitted :class:`~experiments.families.keras_nets.KerasCNNTrainer`."""
    from experiments.families.keras_nets import KerasCNNTrainer

    return KerasCNNTrainer(**options)


FAMILY = ModelFamily(
    name="keras_cnn",
    summary="Keras 1D-CNN over the standardised feature vector",
    options=KerasCNNOptions,
    build=build,
    save=save_keras,
    load=load_keras,
)
