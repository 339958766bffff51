"""Score audio with a registered model: in-process through its pyfunc, or over HTTP.

Both scorers send the same request (a base64 ``audio`` column) to the same served model and
return one row of its answer as a dict, so the page and the command line never have an
inference path of their own. A request the model refuses raises :class:`ScoringError` with
the model's own message.
"""

from __future__ import annotations

import base64
import functools
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from experiments.serving.emotion_model import AUDIO_COLUMN, LABELS_COLUMN, takes_labels
from experiments.tracking.registry import CHAMPION

#: Corpus name of the synthetic demo speakers (``ser_features.demo_corpus``).
SYNTHETIC_CORPUS = "synthetic_demo"


class ScoringError(RuntimeError):
    """The model could not answer: the message says why and what to do."""


@dataclass(frozen=True)
class ModelDetails:
    """What the page says about a registered model version."""

    reference: str
    version: str
    family: str
    feature_set: str
    uar: float | None
    synthetic: bool
    #: The labels it answers among (those its test run was scored on).
    labels: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for people."""
        score = f", test UAR {self.uar:.3f}" if self.uar is not None else ""
        return (
            f"`{self.reference}` (version {self.version}: {self.family} on "
            f"{self.feature_set}{score})"
        )


def request_frame(audio: bytes, labels: list[str] | None = None) -> dict[str, list]:
    """One clip as ``dataframe_split`` columns and data; ``labels`` restrict the answer."""
    columns, row = [AUDIO_COLUMN], [base64.b64encode(audio).decode()]
    if labels:
        columns.append(LABELS_COLUMN)
        row.append(",".join(labels))
    return {"columns": columns, "data": [row]}


def request_body(audio: bytes, labels: list[str] | None = None) -> bytes:
    """The JSON body ``mlflow models serve`` expects for one clip."""
    return json.dumps({"dataframe_split": request_frame(audio, labels)}).encode()


class EndpointScorer:
    """Scores through a running ``mlflow models serve`` at ``url``."""

    def __init__(self, url: str, *, timeout_s: float = 120.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def score(self, audio: bytes, labels: list[str] | None = None) -> dict[str, Any]:
        """The served answer for ``audio`` (the bytes of a file in any format it reads),
        among ``labels`` only when given."""
        endpoint = self.url.rstrip("/") + "/invocations"
        request = urllib.request.Request(
            endpoint, request_body(audio, labels), {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                answer = json.load(response)["predictions"][0]
        except urllib.error.HTTPError as exc:
            raise ScoringError(_server_message(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ScoringError(
                f"cannot reach the model server at {self.url} ({reason}); start it with "
                "`ser serve` or drop --model-url to score in-process"
            ) from None
        if labels and set(answer.get("probabilities") or {}) - set(labels):
            # the server's signature has no labels column, so MLflow dropped it
            raise ScoringError(
                f"the model served at {self.url} answered among every label it knows, not "
                "the ticked ones: it was registered before models took a list of labels; "
                "untick the labels, or serve a newer version"
            )
        return answer


class RegistryScorer:
    """Scores in-process with ``models:/NAME@alias`` (or ``models:/NAME/VERSION``)."""

    def __init__(self, model_uri: str) -> None:
        self.model_uri = model_uri

    def score(self, audio: bytes, labels: list[str] | None = None) -> dict[str, Any]:
        """The answer of the model's pyfunc for ``audio``, among ``labels`` when given."""
        import mlflow
        import pandas as pd

        model = _load_pyfunc(self.model_uri)
        if labels and not takes_labels(model.metadata.get_input_schema()):
            raise ScoringError(
                f"{self.model_uri} was registered before models took a list of labels to "
                "answer among; untick the labels, or train and promote a new version"
            )
        frame = request_frame(audio, labels)
        try:
            row = model.predict(pd.DataFrame(frame["data"], columns=frame["columns"])).iloc[0]
        except mlflow.exceptions.MlflowException as exc:
            raise ScoringError(exc.message) from None
        return json.loads(json.dumps(row.to_dict(), default=_plain))


@functools.lru_cache(maxsize=4)
def _load_pyfunc(model_uri: str):
    import mlflow

    try:
        return mlflow.pyfunc.load_model(model_uri)
    except mlflow.exceptions.MlflowException as exc:
        raise ScoringError(
            f"cannot load {model_uri}: {exc.message}; train and promote a model first "
            "(`ser demo`, or `ser train` then `ser promote`)"
        ) from None


def model_choices(model_name: str) -> list[str]:
    """Every alias (``@champion`` first) and version number of ``model_name``, as references."""
    from mlflow import MlflowClient

    versions = MlflowClient().search_model_versions(f"name='{model_name}'")
    aliases = sorted({a for v in versions for a in v.aliases}, key=lambda a: (a != CHAMPION, a))
    numbers = sorted((int(v.version) for v in versions), reverse=True)
    return [f"@{alias}" for alias in aliases] + [f"version {n}" for n in numbers]


def choice_uri(model_name: str, choice: str) -> str:
    """``models:/...`` for a choice of :func:`model_choices`."""
    if choice.startswith("@"):
        return f"models:/{model_name}{choice}"
    return f"models:/{model_name}/{choice.removeprefix('version ').strip()}"


def model_details(model_name: str, choice: str) -> ModelDetails:
    """Version, family, feature set, test UAR and whether the demo corpus trained it."""
    from mlflow import MlflowClient

    client = MlflowClient()
    if choice.startswith("@"):
        version = client.get_model_version_by_alias(model_name, choice[1:])
    else:
        version = client.get_model_version(model_name, choice.removeprefix("version ").strip())
    run = client.get_run(version.run_id)
    params, tags = run.data.params, run.data.tags
    corpora = tags.get("training_corpora") or params.get("test_speakers", "")
    return ModelDetails(
        reference=f"{model_name}{choice}" if choice.startswith("@") else f"{model_name} {choice}",
        version=str(version.version),
        family=tags.get("model_family", "?"),
        feature_set=params.get("feature_set", "?"),
        uar=run.data.metrics.get("uar"),
        synthetic=SYNTHETIC_CORPUS in corpora,
        labels=tuple(
            sorted(
                key.removeprefix("support_")
                for key in run.data.metrics
                if key.startswith("support_")
            )
        ),
    )


def _server_message(error: urllib.error.HTTPError) -> str:
    body = error.read().decode(errors="replace")
    try:
        message = json.loads(body).get("message", body)
    except ValueError:
        message = body
    return f"the model server answered {error.code}: {message}"


def _plain(value: Any) -> Any:
    """JSON for NumPy scalars and arrays inside an answer."""
    return value.tolist() if hasattr(value, "tolist") else str(value)
