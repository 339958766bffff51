"""The pickled path of :class:`experiments.families.sklearn_linear.SklearnLinearTrainer`
in models registered by earlier versions."""

from experiments.families.sklearn_linear import SklearnLinearTrainer

__all__ = ["SklearnLinearTrainer"]
