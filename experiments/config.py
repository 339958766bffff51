"""Experiment configuration: one YAML file per experiment, in the manner of SpeechBrain recipes.

Every section is a typed model that rejects unknown keys, and every trainer's options are
checked against its family's declaration (:mod:`experiments.families`), so a typo fails
when the file is read, before any audio is touched, naming the key and the allowed ones.

Example
-------
.. code-block:: yaml

    name: ravdess-speaker-independent
    data:
      folders: [../shared/data/ravdess, ../shared/data/cremad]   # several corpora: union of labels
      # folders: [calls/manifest.csv]          # or manifests (see ser_features.manifests)
      labels:                                  # optional: map and filter the data's labels
        map: {calm: neutral}
        drop: [surprised]
      features: compare2016
      features_dir: data/features/ravdess-cremad
      augment: [pitch_shift, gaussian_noise]   # copies of training clips only
      normalise: none                          # or corpus, speaker, chained (training side)
      balance_corpora: true                    # smaller corpora repeated on the training side
    protocol:
      kind: speaker_independent      # or random_stratified, cross_corpus, leave_one_corpus_out
      test_fraction: 0.2             # of every corpus's speakers, gender-balanced
      cv_folds: 5
      seed: 0
    trainers:
      sklearn_mlp: {cv_folds: 3}
      keras_ann: {epochs: 100}
      h2o_automl:
        max_runtime_secs: 300
        cv_overrides: {max_runtime_secs: 60}   # options used inside cross-validation folds
    tracking:
      experiment: ser-ravdess
    registry:
      model_name: ser-emotion
      metric: uar                    # chooses the best family and decides promotion
    serving:
      max_duration_s: 600            # longer requests get HTTP 400
      max_segment_s: 8               # longer recordings are split at pauses
      session_model: [sklearn_mlp]   # also learn a speaker-normalised model for sessions
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from experiments.evaluation.metrics import SELECTION_METRICS
from experiments.evaluation.splits import (
    CROSS_CORPUS,
    LEAVE_ONE_CORPUS_OUT,
    PROTOCOLS,
    SPEAKER_INDEPENDENT,
)
from experiments.families import FAMILIES, FEATURES, OptionsError, get_family
from experiments.training.normalisation import NORMALISATIONS
from ser_features.augmentation import AUGMENTATIONS
from ser_features.feature_sets import (
    DEFAULT_FEATURE_SET,
    FEATURE_SETS,
    feature_set_parts,
    is_ssl_name,
)
from ser_features.labels import apply_label_scheme

#: Every family an experiment file may name under ``trainers:`` (the registry's keys).
FAMILY_NAMES: tuple[str, ...] = tuple(FAMILIES)


class ConfigError(ValueError):
    """An experiment file that cannot be used, with the field at fault."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_tuple(value: Any) -> Any:
    """A lone string where a list is expected counts as a one-item list."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else value


class LabelsConfig(_Section):
    """How the data's labels are mapped and filtered before training (``data.labels``).

    ``map`` renames (and merges) labels, then ``drop`` removes labels, or ``keep`` keeps only
    the ones it lists; both name labels after ``map``. Clips whose label leaves are not
    trained or tested on; the model learns the labels that remain.
    """

    map: dict[str, str] = Field(
        default_factory=dict,
        description="Renames labels; several names may map onto one (`{calm: neutral}`).",
    )
    drop: tuple[str, ...] = Field((), description="Labels (after `map`) whose clips leave.")
    keep: tuple[str, ...] = Field(
        (), description="If given, only these labels (after `map`) stay; the others leave."
    )

    _tuples = field_validator("drop", "keep", mode="before")(_as_tuple)

    @model_validator(mode="after")
    def _drop_or_keep(self) -> LabelsConfig:
        both = sorted(set(self.drop) & set(self.keep))
        if both:
            raise ValueError(f"labels {both} are both dropped and kept; name each in one list")
        return self

    def mapped(self, labels: pd.Series) -> pd.Series:
        """``labels`` renamed, merged and filtered (None where a clip leaves)."""
        return apply_label_scheme(labels, rename=self.map, drop=self.drop, keep=self.keep)

    def apply(self, table: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``table`` whose label remains, with their ``emotion`` mapped."""
        if not (self.map or self.drop or self.keep):
            return table
        mapped = self.mapped(table["emotion"])
        return table.assign(emotion=mapped).loc[mapped.notna()].reset_index(drop=True)


class DataConfig(_Section):
    """Where the audio is (folders or manifest files), which feature set describes it,
    where the table goes, and how labels are mapped."""

    folders: tuple[str, ...] = Field(
        (),
        description="Folders of audio or manifest files (.csv, .tsv, .jsonl, .parquet); "
        "several sources train on the union of their labels.",
    )
    labels: LabelsConfig = Field(
        LabelsConfig(), description="Renaming, merging and filtering of the data's labels."
    )
    features: str = Field(
        DEFAULT_FEATURE_SET,
        description="Feature set describing every clip: a registered name or a pretrained "
        "encoder `ssl:<hub id or folder>[?options]`; join several with `+`.",
    )
    features_dir: str = Field(
        "", description="Folder of the parquet tables (default `data/features/<name>`)."
    )
    augment: tuple[str, ...] = Field(
        (),
        description="Augmentations whose copies of training clips join the training side.",
    )
    normalise: str = Field(
        "none",
        description="Standardisation fitted on the training side: "
        + ", ".join(f"`{n}`" for n in NORMALISATIONS)
        + ".",
    )
    balance_corpora: bool = Field(
        False, description="Repeat smaller corpora's training clips so each weighs the same."
    )

    _tuples = field_validator("folders", "augment", mode="before")(_as_tuple)

    @field_validator("features", mode="before")
    @classmethod
    def _known_features(cls, value: Any) -> str:
        name = "+".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        try:
            parts = feature_set_parts(name)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        if len(parts) == 1 and name not in FEATURE_SETS and not is_ssl_name(name):
            raise ValueError(f"{name!r} is not one of {list(FEATURE_SETS)}")
        return name

    @field_validator("augment")
    @classmethod
    def _known_augmentations(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [a for a in value if a not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"augment {unknown} unknown; choose from {list(AUGMENTATIONS)}")
        return value

    @field_validator("normalise")
    @classmethod
    def _known_normalisation(cls, value: str) -> str:
        if value not in NORMALISATIONS:
            raise ValueError(f"{value!r} is not one of {list(NORMALISATIONS)}")
        return value

    def augmented_dir(self, augmentation: str) -> str:
        """Where the table of ``augmentation`` copies lives (beside the features)."""
        return str(Path(self.features_dir) / "augmented" / augmentation)


class ProtocolConfig(_Section):
    """How clips are split between training and test (speakers disjoint by default)."""

    kind: str = Field(
        SPEAKER_INDEPENDENT,
        description="Split protocol: " + ", ".join(f"`{p}`" for p in PROTOCOLS) + ".",
    )
    test_speakers: tuple[str, ...] | None = Field(
        None, description="Speakers held out (corpus-qualified ids); else a seeded draw."
    )
    test_fraction: float = Field(
        0.2, gt=0, lt=1, description="Share of each corpus's speakers held out."
    )
    cv_folds: int = Field(
        0, ge=0, description="Speaker folds for cross-validated metrics (0: none)."
    )
    seed: int = Field(0, description="Seeds the held-out draw, the folds and the trainers.")
    train_corpora: tuple[str, ...] = Field(
        (), description="`cross_corpus`: the corpora trained on."
    )
    test_corpora: tuple[str, ...] = Field(
        (), description="`cross_corpus` and `leave_one_corpus_out`: the corpora tested on."
    )

    _tuples = field_validator("train_corpora", "test_corpora", mode="before")(_as_tuple)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in PROTOCOLS:
            raise ValueError(f"{value!r} is not one of {PROTOCOLS}")
        return value

    @field_validator("test_speakers", mode="before")
    @classmethod
    def _speakers(cls, value: Any) -> Any:
        return tuple(str(s) for s in value) if value else None


class TrackingConfig(_Section):
    """Which MLflow experiment the runs go to."""

    experiment: str = Field("ser", description="MLflow experiment the runs go to.")


class RegistryConfig(_Section):
    """The registered model's name and the metric that picks the best family and promotes."""

    model_name: str = Field("ser-emotion", description="Registered model name in MLflow.")
    metric: Literal[SELECTION_METRICS] = Field(  # type: ignore[valid-type]
        "uar", description="Picks the best family of a run and decides promotion."
    )


class ServingConfig(_Section):
    """What the served model does with requests (saved with the model as its model_config)."""

    max_duration_s: float = Field(
        600.0, gt=0, description="Longer requests get HTTP 400 before decoding."
    )
    max_segment_s: float = Field(
        8.0, gt=0, description="Longer recordings are split at pauses into segments."
    )
    session_model: tuple[str, ...] = Field(
        (),
        description="Families that also learn a speaker-normalised companion, used for "
        "requests whose rows name a `session`.",
    )

    _tuples = field_validator("session_model", mode="before")(_as_tuple)

    def model_config_dict(self) -> dict[str, Any]:
        """The mapping the served pyfunc reads (``context.model_config``)."""
        return {
            "max_duration_s": self.max_duration_s,
            "max_segment_s": self.max_segment_s,
            "session_model": list(self.session_model),
        }


class ExperimentFile(_Section):
    """The top level of an experiment file."""

    name: str | None = Field(None, description="Experiment name (default: the file stem).")
    description: str | None = Field(None, description="Free text for people.")
    data: DataConfig = Field(DataConfig(), description="Audio, features and labels.")
    protocol: ProtocolConfig = Field(ProtocolConfig(), description="How clips are split.")
    trainers: dict[str, dict[str, Any] | None] | None = Field(
        None,
        description="Model families to train, each with its options (all default families "
        "when absent).",
    )
    tracking: TrackingConfig = Field(TrackingConfig(), description="MLflow tracking.")
    registry: RegistryConfig = Field(RegistryConfig(), description="Registry and promotion.")
    serving: ServingConfig = Field(ServingConfig(), description="What the served model does.")


class ExperimentConfig(_Section):
    """A whole experiment: data, protocol, trainers and their options, tracking, serving."""

    name: str
    data: DataConfig
    protocol: ProtocolConfig = ProtocolConfig()
    #: Checked options per family, as written (the trainers' own defaults fill the rest).
    trainers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    experiment: str = "ser"
    model_name: str = "ser-emotion"
    #: Chooses the best family of a training run and decides promotion.
    promotion_metric: str = "uar"
    serving: ServingConfig = ServingConfig()
    source: str | None = None

    def with_data_folders(self, folders: list[str]) -> ExperimentConfig:
        """A copy reading ``folders`` instead of the configured ones (``--data``)."""
        data = self.data.model_copy(update={"folders": tuple(str(f) for f in folders)})
        return self.model_copy(update={"data": data})


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
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top, got {type(raw).__name__}")
    try:
        parsed = ExperimentFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_describe(exc)}") from None
    name = parsed.name or Path(source or "experiment").stem
    data = parsed.data
    if not data.features_dir:
        data = data.model_copy(update={"features_dir": f"data/features/{name}"})
    trainers = _trainers(parsed.trainers, where)
    _check_feature_sets(trainers, data.features, where)
    _check_protocol(parsed.protocol, where)
    _check_session_models(parsed.serving, trainers, where)
    return ExperimentConfig(
        name=name,
        data=data,
        protocol=parsed.protocol,
        trainers=trainers,
        experiment=parsed.tracking.experiment,
        model_name=parsed.registry.model_name,
        promotion_metric=parsed.registry.metric,
        serving=parsed.serving,
        source=source,
    )


def _trainers(raw: dict[str, dict[str, Any] | None] | None, where: str) -> dict[str, dict]:
    """Each configured family's options, checked by its declaration (all families if none)."""
    if not raw:
        return {name: {} for name, family in FAMILIES.items() if family.default}
    unknown = sorted(set(raw) - set(FAMILY_NAMES))
    if unknown:
        raise ConfigError(f"{where}: unknown trainers {unknown}; known: {list(FAMILY_NAMES)}")
    try:
        return {
            family: get_family(family).validate(options, where=f"trainers.{family}")
            for family, options in raw.items()
        }
    except OptionsError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_feature_sets(trainers: dict[str, dict], features: str, where: str) -> None:
    """Each family reads ``data.features`` or a part of it (its ``features`` option), and
    families that read only some feature sets (frames, say) get one of them."""
    available = set(feature_set_parts(features))
    for family, options in trainers.items():
        reads = options.get(FEATURES, features)
        if reads != features and not set(feature_set_parts(reads)) <= available:
            raise ConfigError(
                f"{where}: trainers.{family}.features {reads!r} is not part of data.features "
                f"{features!r}"
            )
        accepted = get_family(family).feature_sets
        if accepted and reads not in accepted:
            hint = f" (set trainers.{family}.features)" if len(available) > 1 else ""
            raise ConfigError(
                f"{where}: trainers.{family} reads only the feature sets {list(accepted)}, "
                f"not {reads!r}{hint}"
            )


def _check_protocol(protocol: ProtocolConfig, where: str) -> None:
    if protocol.kind == CROSS_CORPUS and not (protocol.train_corpora and protocol.test_corpora):
        raise ConfigError(f"{where}: cross_corpus needs protocol.train_corpora and test_corpora")
    if protocol.kind == LEAVE_ONE_CORPUS_OUT and len(protocol.test_corpora) != 1:
        raise ConfigError(
            f"{where}: leave_one_corpus_out needs protocol.test_corpora naming the one "
            "corpus held out (the others are trained on)"
        )


def _check_session_models(serving: ServingConfig, trainers: dict[str, dict], where: str) -> None:
    outside = [f for f in serving.session_model if f not in trainers]
    if outside:
        raise ConfigError(
            f"{where}: serving.session_model must list configured trainers, got "
            f"{list(serving.session_model)!r} (configured: {list(trainers)})"
        )
    unable = [f for f in serving.session_model if not get_family(f).session_companion]
    if unable:
        raise ConfigError(
            f"{where}: serving.session_model: {unable} cannot learn a session companion"
        )
    for family in serving.session_model:
        try:
            get_family(family).session_options(trainers[family] or {})
        except ValueError as exc:
            raise ConfigError(f"{where}: serving.session_model: {family}: {exc}") from None


def _describe(exc: ValidationError) -> str:
    """The first problem of a validation error, with the allowed keys for an unknown one."""
    error = exc.errors()[0]
    location = [str(part) for part in error["loc"]]
    key = ".".join(location)
    if error["type"] == "extra_forbidden":
        section = ".".join(location[:-1])
        allowed = _allowed_keys(location[:-1])
        where = f"{section}: " if section else ""
        return f"{where}unknown keys [{location[-1]!r}]; allowed: {allowed}"
    return f"{key}: {error['msg']} (got {error.get('input')!r})"


def _allowed_keys(location: list[str]) -> list[str]:
    model: type[BaseModel] = ExperimentFile
    for part in location:
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return sorted(model.model_fields)
