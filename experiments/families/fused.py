"""``fused``: calibrated probabilities of several families, averaged with learnt weights.

Fitting, on the training side only:

1. every member is fitted on the training part of each inner speaker fold and scores its
   held-out speakers, giving out-of-fold probabilities for every training clip; a member
   that cross-validates on speaker folds itself (H2O AutoML,
   :class:`~experiments.families.base.SelfValidating`) is fitted once on the whole training
   side and its own held-out probabilities are used instead;
2. each member is calibrated by a temperature that minimises its out-of-fold log-loss;
3. the weights (a grid over the simplex in steps of ``weight_step``) are those whose
   weighted mean of calibrated probabilities has the best out-of-fold UAR (log-loss breaks
   ties);
4. every other member is refitted on the whole training side.

The served model is the weighted mean of the members' calibrated probabilities. Each member
is saved by its own family, in a sub-folder.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import recall_score
from typing_extensions import TypedDict

from experiments.families.base import SelfValidating
from experiments.families.inputs import check_labels, make_cv_splits, select_features
from experiments.families.spec import FEATURES, ModelFamily, strict_options
from ser_features.feature_sets import feature_set_columns

_FILE = "fused.json"
#: Members when an experiment file names none.
DEFAULT_MEMBERS: dict[str, dict[str, Any]] = {"sklearn_linear": {}, "sklearn_mlp": {}}
#: Temperatures tried for each member's calibration (log-spaced).
TEMPERATURES = np.geomspace(0.25, 8.0, 41)


@strict_options
class FusedOptions(TypedDict, total=False):
    """Settings of :class:`FusedTrainer`."""

    #: Member family -> its options (checked by that family).
    members: dict[str, dict[str, Any]]
    inner_folds: int
    weight_step: float
    seed: int


def _check_members(options: dict[str, Any]) -> dict[str, Any]:
    """Every member named and its options checked by its own family, when the file is read."""
    from experiments.families import get_family

    members = options.get("members")
    if members is None:
        return options
    if len(members) < 1 or "fused" in members:
        raise ValueError("fused.members must name at least one other family")
    checked = {}
    for name, member_options in members.items():
        checked[name] = get_family(name).validate(member_options, where=f"fused.members.{name}")
    return {**options, "members": checked}


def _softmax_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.log(np.clip(proba, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def _log_loss(proba: np.ndarray, codes: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(codes)), codes], 1e-12, 1.0))))


def _uar(proba: np.ndarray, codes: np.ndarray) -> float:
    return float(recall_score(codes, proba.argmax(axis=1), average="macro", zero_division=0))


def _weight_grid(n_members: int, step: float) -> list[tuple[float, ...]]:
    """Every weight vector on the simplex whose entries are multiples of ``step``."""
    units = round(1 / step)
    return [
        tuple(c / units for c in combo)
        for combo in itertools.product(range(units + 1), repeat=n_members)
        if sum(combo) == units
    ]


class FusedTrainer:
    """A weighted mean of calibrated member families (see the module docstring)."""

    family = "fused"

    def __init__(
        self,
        *,
        members: dict[str, dict[str, Any]] | None = None,
        inner_folds: int = 3,
        weight_step: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.members = members or dict(DEFAULT_MEMBERS)
        self.inner_folds = inner_folds
        self.weight_step = weight_step
        self.seed = seed

    def _member(self, name: str) -> Any:
        from experiments.families import get_family

        return get_family(name).trainer(self.members[name], seed=self.seed)

    def _columns(self, name: str, frame: pd.DataFrame) -> list[str]:
        """The columns member ``name`` learns from: its ``features`` part, else all."""
        part = self.members[name].get(FEATURES)
        if part is None:
            return list(frame.columns)
        wanted = set(feature_set_columns(part))
        return [column for column in frame.columns if column in wanted]

    def _aligned(self, trainer: Any, features: pd.DataFrame) -> np.ndarray:
        """A member's probabilities in this model's ``classes_`` order (absent labels 0)."""
        return self._in_class_order(trainer.predict_proba(features), trainer.classes_)

    def _in_class_order(self, proba: np.ndarray, classes: list[str]) -> np.ndarray:
        out = np.zeros((len(proba), len(self.classes_)))
        for column, label in enumerate(classes):
            out[:, self.classes_.index(label)] = proba[:, column]
        return out

    def fit(
        self, features: pd.DataFrame, labels: np.ndarray, groups: np.ndarray | None = None
    ) -> FusedTrainer:
        """Out-of-fold probabilities, calibration, weights, then every member refitted."""
        from experiments.families import get_family

        frame = select_features(features)
        labels, groups, self.classes_ = check_labels(frame, labels, groups)
        codes = np.array([self.classes_.index(label) for label in labels])
        names = list(self.members)
        columns = {name: self._columns(name, frame) for name in names}
        oof: dict[str, np.ndarray] = {}
        self.members_ = {}
        self.out_of_fold_source_ = {}
        for name in names:
            member = self._member(name)
            if isinstance(member, SelfValidating):
                member.fit(frame[columns[name]], labels, groups)
                self.members_[name] = member
                own = member.out_of_fold_proba()
                if own is not None:
                    oof[name] = self._in_class_order(own, member.classes_)
                    self.out_of_fold_source_[name] = "its own folds"
        inner = [name for name in names if name not in oof]
        if inner:
            _, folds = make_cv_splits(labels, groups, n_folds=self.inner_folds, seed=self.seed)
            oof |= {name: np.zeros((len(frame), len(self.classes_))) for name in inner}
            self.out_of_fold_source_ |= {name: f"{len(folds)} inner folds" for name in inner}
            for train_idx, test_idx in folds:
                for name in inner:
                    member = self._member(name)
                    inner_groups = None if groups is None else groups[train_idx]
                    part = frame[columns[name]]
                    member.fit(part.iloc[train_idx], labels[train_idx], inner_groups)
                    oof[name][test_idx] = self._aligned(member, part.iloc[test_idx])
                    get_family(name).release(member)
        self.temperatures_ = {
            name: float(
                min(
                    TEMPERATURES, key=lambda t: _log_loss(_softmax_temperature(oof[name], t), codes)
                )
            )
            for name in names
        }
        calibrated = [_softmax_temperature(oof[n], self.temperatures_[n]) for n in names]
        self.member_oof_uar_ = {n: _uar(p, codes) for n, p in zip(names, calibrated, strict=True)}

        def quality(weights: tuple[float, ...]) -> tuple[float, float]:
            mixed = sum(w * p for w, p in zip(weights, calibrated, strict=True))
            return _uar(mixed, codes), -_log_loss(mixed, codes)

        best = max(_weight_grid(len(names), self.weight_step), key=quality)
        self.weights_ = dict(zip(names, best, strict=True))
        self.oof_uar_ = quality(best)[0]
        for name in names:
            if name not in self.members_:
                member = self._member(name)
                member.fit(frame[columns[name]], labels, groups)
                self.members_[name] = member
        return self

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """The weighted mean of the members' calibrated probabilities, in ``classes_`` order."""
        if not hasattr(self, "members_"):
            raise RuntimeError("FusedTrainer is not fitted; call fit() first")
        mixed = np.zeros((len(features), len(self.classes_)))
        for name, weight in self.weights_.items():
            if weight > 0:
                proba = self._aligned(self.members_[name], features)
                mixed += weight * _softmax_temperature(proba, self.temperatures_[name])
        return mixed / mixed.sum(axis=1, keepdims=True)

    def release(self) -> None:
        """Release what every member holds elsewhere."""
        from experiments.families import get_family

        for name, member in getattr(self, "members_", {}).items():
            get_family(name).release(member)

    def params(self) -> dict[str, Any]:
        """Members and folds; after ``fit`` the weights, temperatures and out-of-fold UARs."""
        out: dict[str, Any] = {
            "members": self.members,
            "inner_folds": self.inner_folds,
            "weight_step": self.weight_step,
            "seed": self.seed,
        }
        if hasattr(self, "weights_"):
            out |= {
                "weights": self.weights_,
                "temperatures": self.temperatures_,
                "member_oof_uar": self.member_oof_uar_,
                "oof_uar": self.oof_uar_,
                "out_of_fold_source": self.out_of_fold_source_,
            }
            for name, member in self.members_.items():
                out[f"member.{name}"] = member.params()
        return out


def save(trainer: FusedTrainer, directory: Path) -> dict[str, Any]:
    """Each member by its own family in ``members/<name>``, the fusion state as JSON."""
    from experiments.families import get_family

    directory = Path(directory)
    metas = {}
    for name, member in trainer.members_.items():
        folder = directory / "members" / name
        folder.mkdir(parents=True, exist_ok=True)
        metas[name] = {"classes": list(member.classes_), **get_family(name).save(member, folder)}
    state = {
        "classes": trainer.classes_,
        "weights": trainer.weights_,
        "temperatures": trainer.temperatures_,
        "members": metas,
        "options": {k: v for k, v in trainer.params().items() if k in FusedOptions.__annotations__},
    }
    (directory / _FILE).write_text(json.dumps(state, indent=1, default=str))
    return {}


class LoadedMember:
    """A loaded member model with the label order it predicts in."""

    def __init__(self, model: Any, classes: list[str]) -> None:
        self.model, self.classes_ = model, classes

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict_proba(features), dtype=np.float64)


def load(directory: Path, meta: dict[str, Any]) -> FusedTrainer:
    """The fused model written by :func:`save`, scoring without its training code's state."""
    from experiments.families import get_family

    directory = Path(directory)
    state = json.loads((directory / _FILE).read_text())
    trainer = FusedTrainer(**state["options"])
    trainer.classes_ = list(state["classes"])
    trainer.weights_ = {k: float(v) for k, v in state["weights"].items()}
    trainer.temperatures_ = {k: float(v) for k, v in state["temperatures"].items()}
    trainer.members_ = {}
    for name, member_meta in state["members"].items():
        folder = directory / "members" / name
        model = get_family(name).load(folder, member_meta)
        trainer.members_[name] = LoadedMember(model, list(member_meta["classes"]))
    return trainer


def release(trainer: Any) -> None:
    """Release the members' cluster-side state (H2O members)."""
    if isinstance(trainer, FusedTrainer):
        trainer.release()


def companion_options(options: dict[str, Any]) -> dict[str, Any]:
    """A fused session companion fuses the members that can learn a companion themselves
    (an AutoML member cannot: it is left out rather than run once more)."""
    from experiments.families import get_family

    members = options.get("members") or DEFAULT_MEMBERS
    able = {name: opts for name, opts in members.items() if get_family(name).session_companion}
    if not able:
        raise ValueError(
            f"no member of fused ({', '.join(members)}) can learn a session companion; "
            "add one that can (sklearn_linear, sklearn_mlp) or drop fused from "
            "serving.session_model"
        )
    return {**options, "members": able}


def member_tables(trainer: Any) -> dict[str, pd.DataFrame]:
    """The members' own tables (an AutoML member's leaderboard), named ``<member>_<table>``."""
    from experiments.families import get_family

    return {
        f"{name}_{stem}": table
        for name, member in getattr(trainer, "members_", {}).items()
        for stem, table in get_family(name).tables(member).items()
    }


FAMILY = ModelFamily(
    name="fused",
    summary="calibrated member families averaged with weights chosen on inner speaker folds",
    options=FusedOptions,
    build=FusedTrainer,
    save=save,
    load=load,
    release=release,
    tables=member_tables,
    session_options=companion_options,
    check=_check_members,
    default=False,
)
