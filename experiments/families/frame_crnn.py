"""``frame_crnn``: a small CRNN with attention pooling on log-mel *frames* (plain torch).

Unlike the other families, which learn from one functional vector per clip, this one reads
the frame grid of the ``logmel_frames`` feature set (``lm_fNNN_bNN`` plus ``lm_n_frames``)
and learns from the frames, with SpecAugment masking and mixup on the training side and
the padding masked out. torch is imported only when a trainer is built or loaded (see
:mod:`experiments.families.frame_nets`), so reading an experiment file stays fast.

No session companion: speaker normalisation standardises every column per speaker, which
would scramble the frame grid and its frame count; the network normalises per clip instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typing_extensions import TypedDict

from experiments.families.base import Trainer
from experiments.families.spec import ModelFamily, strict_options

#: Folder of the saved network inside a predictor folder.
FRAME_SUBDIR = "frame_crnn"


@strict_options
class FrameCRNNOptions(TypedDict, total=False):
    """Settings of :class:`~experiments.families.frame_nets.FrameCRNNTrainer` (defaults there)."""

    channels: tuple[int, ...]
    time_pooling: tuple[int, ...]
    rnn_hidden: int
    attention_dim: int
    pooling: str
    dropout: float
    clip_normalisation: str
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    patience: int
    class_weight: str | None
    time_masks: int
    time_mask_width: int
    freq_masks: int
    freq_mask_width: int
    mixup_alpha: float
    band_shift: int
    time_stretch: float
    validation_fraction: float
    frame_prefix: str | None
    seed: int
    n_threads: int | None
    verbose: int


def build(**options: Any) -> Trainer:
    """An unfitted :class:`~experiments.families.frame_nets.FrameCRNNTrainer`."""
    from experiments.families.frame_nets import FrameCRNNTrainer

    return FrameCRNNTrainer(**options)


def save(trainer: Any, directory: Path) -> dict[str, Any]:
    """Write a fitted trainer (``weights.npz`` + ``trainer.json``, no pickle) under
    ``directory``."""
    trainer.save(Path(directory) / FRAME_SUBDIR)
    return {}


def load(directory: Path, meta: dict[str, Any]) -> Any:
    """The trainer saved by :func:`save`."""
    from experiments.families.frame_nets import FrameCRNNTrainer

    return FrameCRNNTrainer.load(Path(directory) / FRAME_SUBDIR)


FAMILY = ModelFamily(
    name="frame_crnn",
    summary="CRNN + attention pooling on log-mel frames (logmel_frames), SpecAugment, mixup",
    options=FrameCRNNOptions,
    build=build,
    save=save,
    load=load,
    session_companion=False,
    default=False,
    feature_sets=("logmel_frames",),
)
