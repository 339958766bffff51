"""Score an H2O MOJO classifier in-process through one long-lived JVM (JPype), no H2O cluster.

``h2o.mojo_predict_pandas`` launches a new ``java`` per call (~0.2 s); :class:`MojoScorer`
instead starts an embedded JVM once per process and calls ``GenModel.score0`` directly, which
costs well under a millisecond per row for tree models.  An H2O cluster started by the ``h2o``
package is a separate ``java`` process, so both can live in the same Python process.

Notes
-----
* The JVM cannot be restarted, nor used after ``fork``: build the scorer in the process that
  scores (for an MLflow pyfunc, in ``load_context``, which runs in each server worker).
* The JVM is started with ``-Xrs`` and ``interrupt=False`` so it leaves SIGINT/SIGTERM to
  Python (uvicorn/gunicorn graceful shutdown keeps working).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# JAVA_HINT, JavaNotFoundError and find_java_home are part of this module's interface too.
from experiments.engines.java import JAVA_HINT, JavaNotFoundError, find_java_home

#: Options of a JVM started here; ``-Xrs`` keeps SIGTERM/SIGINT with Python.
JVM_OPTIONS = ("-Xmx512m", "-Xrs")
_LIBJVM = (
    "lib/server/libjvm.so",
    "jre/lib/server/libjvm.so",
    "jre/lib/amd64/server/libjvm.so",
    "lib/server/libjvm.dylib",
    "bin/server/jvm.dll",
)
_MOJO_CLASS = "hex.genmodel.MojoModel"
_START_LOCK = threading.Lock()
_JVM_PID: int | None = None  # pid of the process that started the JVM here


def find_jvm_library() -> Path:
    """Path of ``libjvm`` for ``jpype.startJVM``: JPype's default, else searched under the home."""
    import jpype

    try:
        default = Path(jpype.getDefaultJVMPath())
        if default.is_file():
            return default
    except jpype.JVMNotFoundException:
        pass
    home = find_java_home()
    for candidate in _LIBJVM:
        if (home / candidate).is_file():
            return home / candidate
    raise JavaNotFoundError(
        f"No libjvm found under {home} (a JRE without a server VM?). {JAVA_HINT}"
    )


def _has_class(jpype: Any, name: str) -> bool:
    try:
        jpype.JClass(name)
    except TypeError:  # JPype: "Class ... is not found"
        return False
    return True


def ensure_jvm(genmodel_jar: Path | str) -> None:
    """Start the process-wide JVM with ``genmodel_jar`` on its classpath (idempotent).

    A JVM already running (started elsewhere) gets the jar added to JPype's dynamic class
    loader when it cannot load ``hex.genmodel.MojoModel`` yet.

    Raises
    ------
    FileNotFoundError : the jar does not exist.
    RuntimeError : the JVM was shut down, was inherited through ``fork``, or lacks genmodel.
    """
    import jpype

    global _JVM_PID
    jar = Path(genmodel_jar).resolve()
    if not jar.is_file():
        raise FileNotFoundError(f"h2o-genmodel jar not found: {jar}")
    jar = _stable_copy(jar)
    with _START_LOCK:
        if not jpype.isJVMStarted():
            try:
                jpype.startJVM(
                    str(find_jvm_library()),
                    *JVM_OPTIONS,
                    classpath=[str(jar)],
                    convertStrings=False,
                    interrupt=False,
                )
            except OSError as exc:  # "JVM cannot be restarted"
                raise RuntimeError(f"Cannot start the JVM for MOJO scoring: {exc}") from exc
            _JVM_PID = os.getpid()
            return
        _check_process()
        if not _has_class(jpype, _MOJO_CLASS):
            jpype.addClassPath(jar)
            if not _has_class(jpype, _MOJO_CLASS):
                raise RuntimeError(f"The running JVM cannot load {_MOJO_CLASS} from {jar}")


def _stable_copy(jar: Path) -> Path:
    """A content-addressed copy of ``jar`` that outlives the folder it came from.

    The JVM reads its classpath lazily for the life of the process, while a model's jar may
    sit in a temporary download folder that is deleted once the model is loaded.
    """
    digest = hashlib.sha256(jar.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ser-automl"
    target = cache / f"h2o-genmodel-{digest}.jar"
    if not target.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.partial")
        shutil.copyfile(jar, partial)
        os.replace(partial, target)
    return target


def _check_process() -> None:
    if _JVM_PID is not None and os.getpid() != _JVM_PID:
        raise RuntimeError(
            f"The JVM was started in process {_JVM_PID} and inherited through fork; it is "
            "unusable here. Create the MojoScorer in the process that scores."
        )


class MojoScorer:
    """Class probabilities from an H2O binomial/multinomial MOJO, scored in-process.

    Parameters
    ----------
    mojo_path : the MOJO zip (``model.download_mojo()``).
    genmodel_jar : ``h2o-genmodel.jar`` (``download_mojo(get_genmodel_jar=True)``).

    Notes
    -----
    All-numeric models are scored with ``score0`` on reused Java arrays; models with
    categorical predictors or a non-AUTO categorical encoding go through
    ``EasyPredictModelWrapper`` (unknown levels and unparsable numbers become NA), which is
    slower.  Calls are serialised by a per-instance lock, since the buffers are shared and not
    every algorithm's ``score0`` is documented as thread-safe.
    """

    def __init__(
        self,
        mojo_path: Path | str,
        genmodel_jar: Path | str,
        *,
        non_predictors: tuple[str, ...] = (),
    ) -> None:
        mojo = Path(mojo_path)
        if not mojo.is_file():
            raise FileNotFoundError(f"MOJO not found: {mojo}")
        ensure_jvm(genmodel_jar)
        import jpype

        self._model = jpype.JClass(_MOJO_CLASS).load(str(mojo.resolve()))
        easy = jpype.JClass("hex.genmodel.easy.EasyPredictModelWrapper")
        config = (
            easy.Config()
            .setModel(self._model)
            .setConvertUnknownCategoricalLevelsToNa(True)
            .setConvertInvalidNumbersToNa(True)
        )
        self._wrapper = easy(config)
        self._category = str(self._model.getModelCategory().toString())
        if self._category not in ("Binomial", "Multinomial"):
            raise ValueError(f"{mojo.name} is a {self._category} model, not a classifier")
        response = str(self._model.getResponseName())
        names = [str(n) for n in self._model.getNames()]
        n_cols = int(self._model.getNumCols())
        trailing = {n for n in names[n_cols:] if n != response}
        if trailing and trailing <= set(non_predictors):
            # e.g. AutoML's fold column, listed after the predictors: not part of a row.
            self._features = tuple(names[:n_cols])
        else:
            self._features = tuple(n for n in names if n != response)
        self._feature_index = pd.Index(self._features)
        # Columns the MOJO lists but never reads (e.g. AutoML's fold column): filled with NaN.
        self._non_predictors = tuple(n for n in non_predictors if n in self._features)
        domain = self._model.getDomainValues(self._model.getResponseIdx())
        self._classes = tuple(str(c) for c in domain)
        self._categorical = frozenset(
            name
            for i, name in enumerate(names)
            if name != response and self._model.getDomainValues(i) is not None
        )
        self._fast = (
            not self._categorical
            and self._model.getOrigNames() is None
            and len(self._features) == int(self._model.getNumCols())
        )
        double_array = jpype.JArray(jpype.JDouble)
        self._row = double_array(len(self._features))
        self._preds = double_array(int(self._model.getPredsSize()))
        self._row_data = jpype.JClass("hex.genmodel.easy.RowData")
        self._lock = threading.Lock()

    @property
    def classes(self) -> tuple[str, ...]:
        """Response domain; the column order of :meth:`predict_proba`."""
        return self._classes

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Predictor columns the model expects, in MOJO order."""
        return self._features

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape ``(len(features), len(classes))``, float64.

        Columns are matched by name (extra ones are ignored); numeric NaN means missing.

        Raises
        ------
        ValueError : ``features`` lacks some of :attr:`feature_names`.
        """
        _check_process()
        frame = self._select(features)
        if not self._fast:
            return self._predict_easy(frame)
        try:
            matrix = frame.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            matrix = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        matrix = np.ascontiguousarray(matrix)
        out = np.empty((len(matrix), len(self._classes)), dtype=np.float64)
        row, preds, score0 = self._row, self._preds, self._model.score0
        with self._lock:
            for i in range(len(matrix)):
                row[:] = matrix[i]
                score0(row, preds)
                out[i] = np.asarray(preds)[1:]  # preds[0] is the label index
        return out

    def _select(self, features: pd.DataFrame) -> pd.DataFrame:
        """``features`` restricted to :attr:`feature_names`, in order (fast when already so)."""
        if features.columns.equals(self._feature_index):
            return features
        absent = [name for name in self._non_predictors if name not in features.columns]
        if absent:
            features = features.assign(**dict.fromkeys(absent, np.nan))
        if not features.columns.is_unique:
            features = features.loc[:, ~features.columns.duplicated()]
        indexer = features.columns.get_indexer(self._feature_index)
        missing = [name for name, j in zip(self._features, indexer, strict=True) if j < 0]
        if missing:
            shown = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
            raise ValueError(f"{len(missing)} feature column(s) missing: {shown}")
        return features.iloc[:, indexer]

    def _predict_easy(self, frame: pd.DataFrame) -> np.ndarray:
        """Slow path through ``EasyPredictModelWrapper`` (categorical predictors)."""
        predict = (
            self._wrapper.predictMultinomial
            if self._category == "Multinomial"
            else self._wrapper.predictBinomial
        )
        out = np.empty((len(frame), len(self._classes)), dtype=np.float64)
        with self._lock:
            for i, values in enumerate(frame.itertuples(index=False, name=None)):
                data = self._row_data()
                for name, value in zip(self._features, values, strict=True):
                    if pd.isna(value):
                        continue
                    if name in self._categorical or isinstance(value, str):
                        data.put(name, str(value))
                    else:
                        data.put(name, float(value))
                out[i] = np.asarray(predict(data).classProbabilities)
        return out
