"""What a model family declares: its name, its typed options, how it fits, saves and loads.

A family is one module holding one :class:`ModelFamily` (``FAMILY``) and one line in the
registry (:data:`experiments.families.FAMILIES`). Its options are a ``TypedDict`` of the
trainer's keyword arguments (``total=False``: only what the experiment file sets is passed, so
the trainer's own defaults hold); unknown keys and wrong types are rejected when the
experiment file is read, before any work starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np
import pandas as pd
from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config

from experiments.families.base import Trainer

#: The key under a family's options that overrides some of them inside cross-validation
#: folds (for example a smaller AutoML budget); it takes the family's own options.
CV_OVERRIDES = "cv_overrides"

#: The key under a family's options naming the part of a combined feature set it reads
#: (e.g. ``compare2016`` of ``compare2016+logmel_frames``); every column when absent.
FEATURES = "features"

#: Decorator for a family's options ``TypedDict``: unknown keys are errors.
strict_options = with_config(ConfigDict(extra="forbid", strict=False))


class OptionsError(ValueError):
    """Options a family does not accept, with the key at fault and the allowed ones."""


class ProbabilityModel:
    """Anything with ``predict_proba(features) -> (n_clips, n_classes)`` (a loaded model)."""

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


def _nothing(trainer: Trainer) -> None:
    """The default ``release``: the trainer holds nothing outside this process."""


def _no_tables(trainer: Trainer) -> dict[str, pd.DataFrame]:
    return {}


def _same_options(options: dict[str, Any]) -> dict[str, Any]:
    return options


@dataclass(frozen=True)
class ModelFamily:
    """One model family: everything the pipeline needs to train, log, save and serve it."""

    #: The ``model_family`` tag and the key under ``trainers:`` in an experiment file.
    name: str
    #: One line for listings and docs.
    summary: str
    #: ``TypedDict`` (decorated with :data:`strict_options`) of the trainer's settings.
    options: type
    #: ``build(**options, seed=seed)`` -> an unfitted trainer.
    build: Callable[..., Trainer]
    #: ``save(trainer, folder)`` writes the fitted model; returns extra ``predictor.json`` keys.
    save: Callable[[Trainer, Path], dict[str, Any]]
    #: ``load(folder, meta)`` -> a model with ``predict_proba`` in ``meta["classes"]`` order.
    load: Callable[[Path, dict[str, Any]], Any]
    #: Whether it can learn a speaker-normalised companion for session requests.
    session_companion: bool = True
    #: The companion's options from the family's own (``ValueError`` when none can be made).
    session_options: Callable[[dict[str, Any]], dict[str, Any]] = _same_options
    #: Whether it trains when an experiment file has no ``trainers:`` section.
    default: bool = True
    #: The feature sets it can read (empty: any set of per-clip functionals).
    feature_sets: tuple[str, ...] = ()
    #: Frees what a fitted trainer holds elsewhere (an H2O cluster's frames and models).
    release: Callable[[Trainer], None] = _nothing
    #: Extra tables to log beside the run (e.g. the AutoML leaderboard), by file stem.
    tables: Callable[[Trainer], dict[str, pd.DataFrame]] = _no_tables
    #: Option holding a wall-clock budget in seconds, shown in progress lines.
    budget_option: str | None = None
    #: Further checks of the typed options (e.g. nested members' options); returns them.
    check: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    _adapter: TypeAdapter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_adapter", TypeAdapter(self.options))

    @property
    def option_names(self) -> list[str]:
        """Every option of the family's trainer (besides :data:`CV_OVERRIDES` and
        :data:`FEATURES`, which every family accepts)."""
        return sorted(get_type_hints(self.options))

    def validate(self, options: Mapping[str, Any] | None, *, where: str = "") -> dict[str, Any]:
        """``options`` checked and converted; ``cv_overrides`` checked the same way."""
        raw = dict(options or {})
        overrides = raw.pop(CV_OVERRIDES, None)
        features = raw.pop(FEATURES, None)
        checked = self._check(raw, where or self.name)
        if features is not None:
            checked[FEATURES] = _feature_set_name(features, f"{where or self.name}.{FEATURES}")
        if overrides is not None:
            checked[CV_OVERRIDES] = self._check(overrides, f"{where or self.name}.{CV_OVERRIDES}")
        return checked

    def _check(self, raw: Any, where: str) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            raise OptionsError(f"{where}: expected a mapping of options, got {raw!r}")
        try:
            checked = dict(self._adapter.validate_python(dict(raw)))
        except ValidationError as exc:
            raise OptionsError(self._explain(exc, where)) from None
        if self.check is None:
            return checked
        try:
            return self.check(checked)
        except OptionsError:
            raise
        except ValueError as exc:
            raise OptionsError(f"{where}: {exc}") from None

    def _explain(self, exc: ValidationError, where: str) -> str:
        allowed = ", ".join([*self.option_names, CV_OVERRIDES, FEATURES])
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"])
            if error["type"] == "extra_forbidden":
                problems.append(f"unknown option {key!r}")
            else:
                problems.append(f"{key}: {error['msg']} (got {error.get('input')!r})")
        return f"{where}: {'; '.join(problems)}; allowed: {allowed}"

    def trainer(self, options: Mapping[str, Any] | None = None, *, seed: int = 0) -> Trainer:
        """A fresh, unfitted trainer with ``options`` (``cv_overrides`` excluded)."""
        settings = self.validate(options)
        settings.pop(CV_OVERRIDES, None)
        settings.pop(FEATURES, None)
        return self.build(**{"seed": seed, **settings})


def _feature_set_name(value: Any, where: str) -> str:
    """A registered (or combined) feature-set name, given as a string or a list of parts."""
    from ser_features.feature_sets import feature_set_parts

    name = "+".join(value) if isinstance(value, list | tuple) else str(value)
    try:
        parts = feature_set_parts(name)
        if len(parts) == 1:
            from ser_features.feature_sets import get_feature_spec

            get_feature_spec(name)
    except ValueError as exc:
        raise OptionsError(f"{where}: {exc}") from None
    return name
