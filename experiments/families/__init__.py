"""Model families: one module each, one line each in :data:`FAMILIES`.

Every family has the same trainer shape (:class:`~experiments.families.base.Trainer`:
``fit`` / ``predict_proba`` / ``classes_`` / ``params``) and declares a
:class:`~experiments.families.spec.ModelFamily`: its typed options, how to build, save and
load it, and whether it can learn a speaker-normalised session companion. To add a family,
write ``experiments/families/<name>.py`` with a ``FAMILY`` and add it to the tuple below;
``tests/test_families.py`` runs the same contract checks over every registered family.
"""

from __future__ import annotations

from experiments.families import (
    frame_crnn,
    fused,
    h2o_automl,
    keras_ann,
    keras_cnn,
    prior,
    sklearn_linear,
    sklearn_mlp,
)
from experiments.families.base import Trainer
from experiments.families.spec import CV_OVERRIDES, FEATURES, ModelFamily, OptionsError

#: One line per family, in the order runs and tables list them.
_MODULES = (
    sklearn_mlp,
    sklearn_linear,
    keras_ann,
    keras_cnn,
    h2o_automl,
    prior,
    frame_crnn,
    fused,
)
FAMILIES: dict[str, ModelFamily] = {module.FAMILY.name: module.FAMILY for module in _MODULES}


def get_family(name: str) -> ModelFamily:
    """The registered family called ``name``; a ``ValueError`` lists the known names."""
    try:
        return FAMILIES[name]
    except KeyError:
        known = ", ".join(FAMILIES)
        raise ValueError(f"unknown model family {name!r}; choose one of: {known}") from None


__all__ = [
    "CV_OVERRIDES",
    "FAMILIES",
    "FEATURES",
    "ModelFamily",
    "OptionsError",
    "Trainer",
    "get_family",
]
