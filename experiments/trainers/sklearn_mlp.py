"""The pickled path of :class:`experiments.families.sklearn_mlp.SklearnMLPTrainer` in models
registered by earlier versions."""

from experiments.families.sklearn_mlp import SklearnMLPTrainer

__all__ = ["SklearnMLPTrainer"]
