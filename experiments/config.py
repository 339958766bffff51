"""Experiment configuration: one YAML file per experiment, in the manner of SpeechBrain recipes.

Example
-------
.. code-block:: yaml

    name: ravdess-speaker-independent
    data:
      folders: [../shared/data/ravdess]
      features: spectral_prosodic
      features_dir: data/features/ravdess
      augment: [pitch_shift, gaussian_noise]   # copies of training clips only
    protocol:
      kind: speaker_independent      # or random_stratified, cross_corpus
      test_fraction: 0.2
      cv_folds: 5
      seed: 0
    trainers:
      sklearn_mlp: {cv_folds: 3}
      keras_ann: {epochs: 100}
      h2o_automl: {max_runtime_secs: 300}
    tracking:
      experiment: ser-ravdess
    registry:
      model_name: ser-emotion
      metric: uar
    serving:
      max_duration_s: 600            # longer requests get HTTP 400
      max_segment_s: 8               # longer recordings are split at pauses
      session_model: [sklearn_mlp]   # also learn a speaker-normalised model for sessions
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ser_features.augmentation import AUGMENTATIONS
from ser_features.feature_sets import DEFAULT_FEATURE_SET, FEATURE_SETS

FAMILIES: tuple[str, ...] = (
    "sklearn_mlp",
    "sklearn_linear",
    "keras_ann",
    "keras_cnn",
    "h2o_automl",
)
PROTOCOL_KINDS: tuple[str, ...] = ("speaker_independent", "random_stratified", "cross_corpus")


class ConfigError(ValueError):
    """An experiment file that cannot be used, with the field at fault."""


@dataclass(frozen=True)
class DataConfig:
    """Where the audio is, which feature set describes it, where the table goes."""

    folders: tuple[str, ...]
    features: str = DEFAULT_FEATURE_SET
    features_dir: str = "data/features/default"
    #: Augmentations whose copies of training clips join the training side of every split.
    augment: tuple[str, ...] = ()

    def augmented_dir(self, augmentation: str) -> str:
        """Where the table of ``augmentation`` copies lives (beside the features)."""
        return str(Path(self.features_dir) / "augmented" / augmentation)


@dataclass(frozen=True)
class ProtocolConfig:
    """How clips are split between training and test (speakers disjoint by default)."""

    kind: str = "speaker_independent"
    test_speakers: tuple[str, ...] | None = None
    test_fraction: float = 0.2
    cv_folds: int = 0
    seed: int = 0
    train_corpora: tuple[str, ...] = ()
    test_corpora: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment: data, protocol, trainers and their hyperparameters, tracking."""

    name: str
    data: DataConfig
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    trainers: dict[str, dict[str, Any]] = field(default_factory=dict)
    experiment: str = "ser"
    model_name: str = "ser-emotion"
    promotion_metric: str = "uar"
    serving: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def with_data_folders(self, folders: list[str]) -> ExperimentConfig:
        """A copy reading ``folders`` instead of the configured ones (``--data``)."""
        from dataclasses import replace

        return replace(self, data=replace(self.data, folders=tuple(folders)))


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment YAML file; relative data paths stay as written."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"experiment file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return parse_config(raw, source=str(path))


def parse_config(raw: dict[str, Any], *, source: str | None = None) -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from a mapping, naming the first invalid field."""
    where = source or "config"
    sections = {"name", "description", "data", "protocol", "trainers", "tracking", "registry"}
    _only(raw, sections | {"serving"}, where)
    data_raw = raw.get("data") or {}
    _only(data_raw, {"folders", "features", "features_dir", "augment"}, f"{where}: data")
    folders = data_raw.get("folders") or []
    if isinstance(folders, str):
        folders = [folders]
    features = data_raw.get("features", DEFAULT_FEATURE_SET)
    if features not in FEATURE_SETS:
        raise ConfigError(f"{where}: data.features {features!r} is not one of {list(FEATURE_SETS)}")
    augment = data_raw.get("augment") or []
    if isinstance(augment, str):
        augment = [augment]
    unknown_augment = [a for a in augment if a not in AUGMENTATIONS]
    if unknown_augment:
        raise ConfigError(
            f"{where}: data.augment {unknown_augment} unknown; choose from {list(AUGMENTATIONS)}"
        )
    name = str(raw.get("name") or Path(source or "experiment").stem)
    data = DataConfig(
        folders=tuple(str(f) for f in folders),
        features=features,
        features_dir=str(data_raw.get("features_dir") or f"data/features/{name}"),
        augment=tuple(str(a) for a in augment),
    )
    protocol = _protocol(raw.get("protocol") or {}, where)
    trainers = raw.get("trainers") or {family: {} for family in FAMILIES}
    unknown = set(trainers) - set(FAMILIES)
    if unknown:
        raise ConfigError(f"{where}: unknown trainers {sorted(unknown)}; known: {FAMILIES}")
    serving = dict(raw.get("serving") or {})
    session_model = serving.get("session_model") or []
    if isinstance(session_model, str) or not set(session_model) <= set(trainers):
        raise ConfigError(
            f"{where}: serving.session_model must list configured trainers, got {session_model!r}"
        )
    tracking = raw.get("tracking") or {}
    registry = raw.get("registry") or {}
    return ExperimentConfig(
        name=name,
        data=data,
        protocol=protocol,
        trainers={family: dict(params or {}) for family, params in trainers.items()},
        experiment=str(tracking.get("experiment", "ser")),
        model_name=str(registry.get("model_name", "ser-emotion")),
        promotion_metric=str(registry.get("metric", "uar")),
        serving=serving,
        source=source,
    )


def _protocol(raw: dict[str, Any], where: str) -> ProtocolConfig:
    _only(
        raw,
        {
            "kind",
            "test_speakers",
            "test_fraction",
            "cv_folds",
            "seed",
            "train_corpora",
            "test_corpora",
        },
        f"{where}: protocol",
    )
    kind = raw.get("kind", "speaker_independent")
    if kind not in PROTOCOL_KINDS:
        raise ConfigError(f"{where}: protocol.kind {kind!r} is not one of {PROTOCOL_KINDS}")
    if kind == "cross_corpus" and not (raw.get("train_corpora") and raw.get("test_corpora")):
        raise ConfigError(f"{where}: cross_corpus needs protocol.train_corpora and test_corpora")
    speakers = raw.get("test_speakers")
    return ProtocolConfig(
        kind=kind,
        test_speakers=tuple(str(s) for s in speakers) if speakers else None,
        test_fraction=float(raw.get("test_fraction", 0.2)),
        cv_folds=int(raw.get("cv_folds", 0)),
        seed=int(raw.get("seed", 0)),
        train_corpora=tuple(raw.get("train_corpora") or ()),
        test_corpora=tuple(raw.get("test_corpora") or ()),
    )


def _only(mapping: dict[str, Any], allowed: set[str], where: str) -> None:
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(mapping).__name__}")
    extra = set(mapping) - allowed
    if extra:
        raise ConfigError(f"{where}: unknown keys {sorted(extra)}; allowed: {sorted(allowed)}")
