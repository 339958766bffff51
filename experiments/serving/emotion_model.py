"""The served model: base64 audio in, emotion, confidence, probabilities, segments and what
the recording lets a listener hear (``quality``) out.

It carries the whole inference path (decode, the training feature set's loading and
description, the fitted classifier) so ``mlflow models serve`` needs nothing else.  Bad
input raises :class:`RequestError` (an ``MlflowException``), which the scoring server answers
with HTTP 400 and only the message naming the problem, and keeps serving.  When the server's
per-request timeout (``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT``) is set, a request still being
read after it stops at the next row, or before its pieces are described (HTTP 504), instead of
using the CPU on. Every piece of every row of a request is described in one batch (for an
encoder feature set, pieces of the same length share its forward passes).

What it knows about the speaker: nothing, unless told.  A lone clip is scored on its own.
When rows carry a ``session`` id (one speaker: a call, a therapy session, an enrolment) and
the model was trained with a speaker-normalised companion, the clips of every session with
at least :data:`~experiments.training.normalisation.MIN_CLIPS_PER_SPEAKER` clips are standardised by
that session's own statistics and scored by the companion (``speaker_normalised`` is then
true in the answer).  The labels of those clips are never needed.

What it answers among: every label it learnt, unless a row's ``labels`` names some of them
(comma-separated, e.g. ``angry,happy,neutral,sad``): that row's probabilities are then
renormalised over those labels alone, for users whose recordings cannot carry the others
(a model trained with RAVDESS knows ``calm``, which most corpora do not have).

What it hears: every answer carries the recording's ``quality`` facts (seconds of speech,
estimated SNR, sample rate, bandwidth, clipping, speech level) and warnings
(:mod:`ser_features.quality`). A recording with less speech than
:data:`~ser_features.quality.MIN_SPEECH_S` is answered with no emotion and no confidence (its
probabilities are still given): too little to judge, not a bad request.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from mlflow.environment_variables import MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import DEADLINE_EXCEEDED, INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from experiments.serving.alias_follower import AliasFollower, alias_version, followed_alias
from experiments.serving.prediction_log import (
    LOG_ENV,
    PredictionLog,
    answer_rows,
    monitored_columns,
    quality_facts,
)
from experiments.serving.recording import (
    as_recorded,
    hear,
    judged_pieces,
    through_telephone_band,
)
from experiments.training.normalisation import MIN_CLIPS_PER_SPEAKER, standardise_per_speaker
from ser_features.audio import Clip
from ser_features.errors import AudioError
from ser_features.feature_sets import FeatureSpec, feature_set_columns, get_feature_spec

AUDIO_COLUMN = "audio"
#: Optional input column: rows with the same value are clips of one speaker.
SESSION_COLUMN = "session"
#: Optional input column: the labels a row's answer is chosen among, comma-separated.
LABELS_COLUMN = "labels"
OUTPUT_COLUMNS = [
    "emotion",
    "confidence",
    "probabilities",
    "segments",
    "speaker_normalised",
    "error",
    "model_version",
    "quality",
]
#: The warning that leaves a row unjudged (no emotion, no confidence).
TOO_LITTLE_SPEECH = "too_little_speech"
DEFAULT_MAX_DURATION_S = 600.0
DEFAULT_MAX_SEGMENT_S = 8.0
#: ``model_config`` key: the model learnt from telephone-band recordings
#: (:func:`ser_features.quality.telephone_band` of its training clips' rates).
TELEPHONE_BAND_KEY = "telephone_band"


def takes_labels(input_schema: Any) -> bool:
    """Whether a served model with this input schema reads the ``labels`` column.

    Models registered before the column existed have a signature without it, and MLflow
    drops columns a signature does not name: they would answer among every label.
    """
    return input_schema is None or LABELS_COLUMN in input_schema.input_names()


class RequestError(MlflowException):
    """A request the model cannot answer: HTTP ``status`` with exactly ``message``.

    MLflow's scoring server reassigns ``message`` of a model's ``MlflowException`` to
    ``Failed to predict data '<the input frame>'. Error: ...`` before it answers with
    :meth:`serialize_as_json` and :meth:`get_http_status_code`; both are overridden here so
    the answer carries the message given, not the request's data.
    """

    def __init__(
        self, message: str, *, status: int = 400, error_code: int = INVALID_PARAMETER_VALUE
    ) -> None:
        super().__init__(message, error_code=error_code)
        self.reason = message
        self.status = status

    def serialize_as_json(self) -> str:
        """``{"error_code": ..., "message": <the message given>}``."""
        return json.dumps({"error_code": self.error_code, "message": self.reason})

    def get_http_status_code(self) -> int:
        """The HTTP status of the answer."""
        return self.status


def bad_request(message: str) -> RequestError:
    """An error the scoring server turns into HTTP 400 with ``message``."""
    return RequestError(message)


@dataclass(frozen=True)
class ServedVersion:
    """Everything one model version answers with: its predictors, feature set and limits.

    ``version`` is its registry version when known (it is what answers name).
    """

    predictor: Any
    session_predictor: Any | None
    spec: FeatureSpec
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    max_segment_s: float = DEFAULT_MAX_SEGMENT_S
    version: str | None = None
    #: it learnt from telephone-band recordings: it hears every recording through that band
    telephone_band: bool = False

    @functools.cached_property
    def monitored_columns(self) -> list[str]:
        """The feature columns the prediction log keeps for this version (worked out once)."""
        return monitored_columns(list(feature_set_columns(self.spec.name)))


class Heard(NamedTuple):
    """One row read: the spans judged apart (seconds into the recording as received), their
    clips, the facts logged and the quality facts answered."""

    spans: list[tuple[float, float]]
    pieces: list[Clip]
    facts: dict[str, Any]
    quality: dict[str, Any]


def _describe_all(spec: FeatureSpec, heard: list[Heard | None]) -> list[Described | None]:
    """Every piece of every row described in one batch (an encoder's, say), then each row's
    feature rows apart; ``None`` stays ``None``."""
    pieces = [piece for item in heard if item is not None for piece in item.pieces]
    rows = spec.describe_many(pieces)
    columns = list(rows[0])
    # One float block: building a frame from a list of dicts costs ~70 ms at 6373 columns.
    values = np.array([[row[name] for name in columns] for row in rows])
    described: list[Described | None] = []
    start = 0
    for item in heard:
        if item is None:
            described.append(None)
            continue
        end = start + len(item.pieces)
        features = pd.DataFrame(values[start:end], columns=columns)
        described.append(Described(item.spans, features, item.facts, item.quality))
        start = end
    return described


class Described(NamedTuple):
    """One row read and described: the spans judged apart (seconds into the recording as
    received), their feature rows, the facts logged and the quality facts answered."""

    spans: list[tuple[float, float]]
    features: pd.DataFrame
    facts: dict[str, Any]
    quality: dict[str, Any]

    @property
    def judged(self) -> bool:
        """Whether it holds enough speech to be given an emotion."""
        return TOO_LITTLE_SPEECH not in self.quality["warnings"]


def load_served_version(
    predictor_dir: Path, model_config: dict[str, Any] | None, *, version: str | None = None
) -> ServedVersion:
    """Load a saved predictor (and its session companion) with the served model's settings."""
    from experiments.families.predictors import SESSION_SUBDIR, load_predictor

    predictor = load_predictor(predictor_dir)
    session_dir = predictor_dir / SESSION_SUBDIR
    config = model_config or {}
    return ServedVersion(
        predictor=predictor,
        session_predictor=load_predictor(session_dir) if session_dir.is_dir() else None,
        spec=get_feature_spec(predictor.feature_set),
        max_duration_s=float(config.get("max_duration_s", DEFAULT_MAX_DURATION_S)),
        max_segment_s=float(config.get("max_segment_s", DEFAULT_MAX_SEGMENT_S)),
        version=version,
        telephone_band=bool(config.get(TELEPHONE_BAND_KEY, False)),
    )


class EmotionModel(PythonModel):
    """Pyfunc wrapper around a saved predictor (see :mod:`experiments.families.predictors`).

    Under ``ser serve`` it follows the registry alias it was started on
    (:mod:`experiments.serving.alias_follower`): a newly promoted or rolled-back version is
    loaded beside the serving one and swapped in when whole.
    """

    def load_context(self, context: Any) -> None:
        """Load the predictor and its feature set once per server process."""
        from experiments.families.keras_backend import select_torch_backend

        select_torch_backend()  # before a Keras predictor first imports keras
        directory = Path(context.artifacts["predictor"])
        loaded = load_served_version(directory, context.model_config)
        self._follower: AliasFollower[ServedVersion] | None = None
        self._fixed = loaded
        followed = followed_alias()
        if followed is not None:
            name, alias = followed
            version = _registered_version(name, alias, directory.parents[1])
            self._fixed = replace(loaded, version=version)
            self._follower = AliasFollower(
                name,
                alias,
                lambda v: _load_registered(name, v),
                version=version,
                current=self._fixed,
            ).start()
        timeout = MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT
        self.timeout_s = float(timeout.get()) if timeout.defined else None
        folder = os.environ.get(LOG_ENV, "").strip()
        self._log = PredictionLog(folder) if folder else None
        self._model_name = followed[0] if followed is not None else None

    @property
    def served(self) -> ServedVersion:
        """The version answering new requests now."""
        return self._follower.current if self._follower is not None else self._fixed

    @property
    def spec(self) -> FeatureSpec:
        """The feature set of the version serving now."""
        return self.served.spec

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        """One output row per input row, the good rows scored in one batched predictor call.

        A bad row among good ones gets its own ``error`` message (and no emotion) while the
        others are answered; when every row is bad (a single bad row included) the request
        fails with HTTP 400 naming the problem.
        """
        if not isinstance(model_input, pd.DataFrame) or AUDIO_COLUMN not in model_input.columns:
            raise bad_request(
                f"input needs a column {AUDIO_COLUMN!r} holding base64-encoded audio file bytes"
            )
        if len(model_input) == 0:
            raise bad_request("input has no rows")
        served = self.served  # this request is answered by one version, start to end
        started = time.perf_counter()
        deadline = time.monotonic() + self.timeout_s if self.timeout_s else None
        heard: list[Heard | None] = []
        errors: list[RequestError | None] = []
        answer_labels: list[list[str] | None] = []
        for position, value in enumerate(model_input[AUDIO_COLUMN]):
            wanted = None
            try:
                wanted = self._answer_labels(served, model_input, position)
                heard.append(self._hear(served, value, position, deadline))
                errors.append(None)
            except RequestError as exc:
                if exc.status != 400:  # a timeout ends the whole request
                    raise
                heard.append(None)
                errors.append(exc)
            answer_labels.append(wanted)  # one entry per row, failed rows included
        good = np.array([error is None for error in errors])
        if not good.any():
            raise errors[0] if len(errors) == 1 else bad_request(_every_row_failed(errors))
        self._check_deadline(deadline, len(heard) - 1)
        described = _describe_all(served.spec, heard)
        logged = self._monitored(served, described) if self._log is not None else None
        judged = np.array([item is not None and item.judged for item in described])
        normalised = self._session_rows(served, model_input, judged)
        if normalised.any():
            self._normalise_sessions(described, model_input[SESSION_COLUMN], normalised)
        answers = self._answer_all(served, described, normalised, answer_labels)
        rows = [
            {**(answers[i] if error is None else _error_row(error.reason)),
             "model_version": served.version}
            for i, error in enumerate(errors)
        ]  # fmt: skip
        frame = pd.DataFrame(rows, columns=OUTPUT_COLUMNS)
        # None, not NaN, for a failed row (NaN is not JSON); floats stay floats.
        frame["confidence"] = pd.Series([row["confidence"] for row in rows], dtype=object)
        if self._log is not None and logged is not None:
            facts, features = logged
            self._log.append(
                answer_rows(
                    rows,
                    facts,
                    features,
                    model_name=self._model_name,
                    request_ms=1000 * (time.perf_counter() - started),
                )
            )
        return frame

    @staticmethod
    def _monitored(served: ServedVersion, described: list) -> tuple[list, list]:
        """Each row's quality facts and the mean of its pieces' monitored feature columns
        (before any session normalisation), for the prediction log."""
        columns = served.monitored_columns
        facts = [None if item is None else item.facts for item in described]
        features = [
            None if item is None else item.features[columns].mean(axis=0).to_dict()
            for item in described
        ]
        return facts, features

    def _answer_labels(
        self, served: ServedVersion, model_input: pd.DataFrame, position: int
    ) -> list[str] | None:
        """The labels row ``position`` asks to be answered among, if any (checked)."""
        if LABELS_COLUMN not in model_input.columns:
            return None
        value = model_input[LABELS_COLUMN].iloc[position]
        if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
            return None
        classes = list(served.predictor.classes)
        if not isinstance(value, str):
            raise bad_request(
                f"row {position}: {LABELS_COLUMN!r} must be a comma-separated string of labels"
            )
        wanted = list(dict.fromkeys(label.strip() for label in value.split(",") if label.strip()))
        unknown = [label for label in wanted if label not in classes]
        if unknown or not wanted:
            named = f"unknown label(s) {', '.join(map(repr, unknown))}" if unknown else "no label"
            raise bad_request(
                f"row {position}: {LABELS_COLUMN!r} names {named}; "
                f"this model knows: {', '.join(classes)}"
            )
        return wanted

    def _answer_all(
        self,
        served: ServedVersion,
        described: list[Described | None],
        normalised: np.ndarray,
        answer_labels: list[list[str] | None],
    ) -> dict[int, dict[str, Any]]:
        """Answers of the described rows: one ``predict_proba`` per predictor, not per row."""
        answers: dict[int, dict[str, Any]] = {}
        for flag in (False, True):
            chosen = [
                i for i, item in enumerate(described) if item is not None and normalised[i] == flag
            ]
            if not chosen:
                continue
            predictor = served.session_predictor if flag else served.predictor
            stacked = pd.concat([described[i].features for i in chosen], ignore_index=True)
            proba = predictor.predict_proba(stacked)
            start = 0
            for i in chosen:
                pieces = len(described[i].spans)
                rows, classes = proba[start : start + pieces], list(predictor.classes)
                if answer_labels[i] is not None:
                    rows = rows[:, [classes.index(label) for label in answer_labels[i]]]
                    rows = rows / np.maximum(rows.sum(axis=1, keepdims=True), 1e-12)
                    classes = answer_labels[i]
                answers[i] = _answer(described[i], rows, classes, normalised=flag)
                start += pieces
        return answers

    def _session_rows(
        self, served: ServedVersion, model_input: pd.DataFrame, good: np.ndarray
    ) -> np.ndarray:
        """Which good rows belong to a session with enough good clips to be normalised (rows
        with too little speech to judge neither count nor are normalised)."""
        flags = np.zeros(len(model_input), dtype=bool)
        if SESSION_COLUMN not in model_input.columns or served.session_predictor is None:
            return flags
        sessions = model_input[SESSION_COLUMN]
        present = sessions.notna() & (sessions.astype(str).str.len() > 0) & good
        counts = sessions[present].astype(str).value_counts()
        return (present & sessions.astype(str).map(counts).ge(MIN_CLIPS_PER_SPEAKER)).to_numpy()

    def _normalise_sessions(
        self, described: list[Described], sessions: pd.Series, rows: np.ndarray
    ) -> None:
        """Standardise the features of flagged rows by their session's pieces, in place."""
        chosen = np.flatnonzero(rows)
        stacked = pd.concat([described[i].features for i in chosen], ignore_index=True)
        groups = np.concatenate(
            [[str(sessions.iloc[i])] * len(described[i].features) for i in chosen]
        )
        normalised = standardise_per_speaker(stacked, groups)
        start = 0
        for i in chosen:
            end = start + len(described[i].features)
            features = normalised.iloc[start:end].reset_index(drop=True)
            described[i] = described[i]._replace(features=features)
            start = end

    def _hear(
        self, served: ServedVersion, value: Any, position: int, deadline: float | None
    ) -> Heard:
        """Decode one row as received, measure what it lets a listener hear, and split it
        where its speech stops if long, into the pieces to describe."""
        self._check_deadline(deadline, position)
        recorded = self._decode(served, value, position)
        if recorded.duration_s > served.max_duration_s:
            raise bad_request(
                f"row {position}: audio is {recorded.duration_s:.0f} s long; the limit is "
                f"{served.max_duration_s:.0f} s (split the recording or raise max_duration_s)"
            )
        probability, quality = hear(recorded, model_telephone_band=served.telephone_band)
        heard_as = through_telephone_band(recorded) if served.telephone_band else recorded
        try:
            spans, pieces = judged_pieces(
                heard_as, probability, served.spec.load, max_segment_s=served.max_segment_s
            )
        except AudioError as exc:
            raise bad_request(f"row {position}: {exc}") from None
        facts = quality_facts(recorded.samples, recorded.sample_rate, quality)
        return Heard(spans, pieces, facts, quality)

    def _check_deadline(self, deadline: float | None, position: int) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise RequestError(
                f"row {position}: the request took longer than the {self.timeout_s:g} s limit; "
                "send fewer or shorter clips per request",
                status=504,
                error_code=DEADLINE_EXCEEDED,
            )

    def _decode(self, served: ServedVersion, value: Any, position: int) -> Clip:
        if not isinstance(value, str | bytes) or not value:
            raise bad_request(f"row {position}: {AUDIO_COLUMN!r} is empty or not a string")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            hint = (
                "; it looks like a file path: send the file's bytes, base64-encoded"
                if _looks_like_path(value)
                else ""
            )
            raise bad_request(
                f"row {position}: {AUDIO_COLUMN!r} is not valid base64 ({exc}){hint}"
            ) from None
        try:
            return as_recorded(raw, max_duration_s=served.max_duration_s)
        except AudioError as exc:
            raise bad_request(f"row {position}: {exc}") from None


def _looks_like_path(value: str | bytes) -> bool:
    """Whether a short value reads like a file name or path rather than encoded audio."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return len(text) < 4096 and bool(_PATH_LIKE.search(text))


_PATH_LIKE = re.compile(
    r"(^(/|~|\.{1,2}/|[A-Za-z]:\\|file:)|\.(wav|flac|mp3|ogg|aiff?|m4a)$)", re.IGNORECASE
)


def _answer(
    item: Described, proba: np.ndarray, classes: list[str], *, normalised: bool
) -> dict[str, Any]:
    """One row's answer from its pieces' probabilities, weighted by their durations; with no
    emotion, confidence or segments when it holds too little speech to judge."""
    spans = item.spans
    weights = np.array([end - start for start, end in spans])
    overall = (proba * weights[:, None]).sum(axis=0) / weights.sum()
    best = int(np.argmax(overall))
    segments = [
        {
            "start": round(start, 3),
            "end": round(end, 3),
            "emotion": classes[int(np.argmax(row))],
            "confidence": float(np.max(row)),
        }
        for (start, end), row in zip(spans, proba, strict=True)
    ]
    return {
        "emotion": classes[best] if item.judged else None,
        "confidence": float(overall[best]) if item.judged else None,
        "probabilities": {label: float(p) for label, p in zip(classes, overall, strict=True)},
        "segments": segments if item.judged else [],
        "speaker_normalised": normalised,
        "error": None,
        "quality": item.quality,
    }


def _error_row(message: str) -> dict[str, Any]:
    """The answer of a row that could not be scored: no emotion, only why."""
    return {
        "emotion": None,
        "confidence": None,
        "probabilities": {},
        "segments": [],
        "speaker_normalised": False,
        "error": message,
        "quality": None,
    }


def _every_row_failed(errors: list[RequestError | None], *, shown: int = 5) -> str:
    reasons = [error.reason for error in errors if error is not None]
    more = f"; and {len(reasons) - shown} more" if len(reasons) > shown else ""
    return f"every row failed: {'; '.join(reasons[:shown])}{more}"


def _registered_version(name: str, alias: str, model_dir: Path) -> str | None:
    """The registry version of the model in ``model_dir`` if ``name@alias`` names it now,
    else None (the follower then loads the version the alias names)."""
    from mlflow import MlflowClient
    from mlflow.models import Model

    try:
        loaded = Model.load(str(model_dir))
        version = alias_version(name, alias)
        registered = MlflowClient().get_model_version(name, version)
    except Exception:  # no registry, or no such alias: answers then name no version
        return None
    loaded_id = getattr(loaded, "model_id", None)
    same_model = loaded_id is not None and getattr(registered, "model_id", None) == loaded_id
    return version if same_model or registered.run_id == loaded.run_id else None


def _load_registered(name: str, version: str) -> ServedVersion:
    """Download version ``version`` of ``name``, load it, and score a synthetic clip with it
    (a version whose files or features do not fit fails here, not on a request)."""
    import mlflow
    from mlflow.models import Model

    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}"))
    config = Model.load(str(local)).flavors.get("python_function", {}).get("config")
    served = load_served_version(local / "artifacts" / "predictor", config, version=version)
    columns = list(feature_set_columns(served.spec.name))
    probe = pd.DataFrame([np.zeros(len(columns))], columns=columns)
    served.predictor.predict_proba(probe)
    return served
