"""In-process MOJO scoring (JPype) against the predictions of a real local H2O cluster."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

h2o = pytest.importorskip("h2o")
jpype = pytest.importorskip("jpype")

from h2o.estimators import H2OGradientBoostingEstimator  # noqa: E402

from experiments.serving.mojo_scorer import (  # noqa: E402
    JavaNotFoundError,
    MojoScorer,
    find_java_home,
    find_jvm_library,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Converting H2O frame"),
    pytest.mark.filterwarnings("ignore:Test/Validation dataset column"),
]

#: Deliberately not alphabetical: H2O sorts the response domain.
LABELS = ["sad", "angry", "neutral", "happy"]
FEATURES = [f"f{i:02d}" for i in range(20)]


def _java_present() -> bool:
    try:
        find_java_home()
    except JavaNotFoundError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _synthetic(n_per_class: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(LABELS), len(FEATURES)))
    blocks = [centres[c] + rng.normal(size=(n_per_class, len(FEATURES))) for c in range(4)]
    frame = pd.DataFrame(np.vstack(blocks), columns=FEATURES)
    frame["label"] = np.repeat(LABELS, n_per_class)
    return frame


def _cluster_proba(model, frame: pd.DataFrame, classes) -> tuple[np.ndarray, np.ndarray]:
    pred = model.predict(h2o.H2OFrame(frame)).as_data_frame(use_multi_thread=False)
    assert list(pred.columns[1:]) == list(classes)
    return pred[list(classes)].to_numpy(np.float64), pred["predict"].astype(str).to_numpy()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not _java_present():
        pytest.skip("java not found (apt-get install openjdk-17-jre-headless) - needs a JVM")
    ice = tmp_path_factory.mktemp("h2o_ice")
    with contextlib.redirect_stdout(io.StringIO()):  # version-age banner
        h2o.init(nthreads=2, max_mem_size="1G", ice_root=str(ice), port=_free_port(), verbose=False)
    h2o.no_progress()
    yield
    h2o.cluster().shutdown()


@pytest.fixture(scope="module")
def numeric_model(cluster, tmp_path_factory):
    """GBM on 20 numeric features, its MOJO and genmodel jar."""
    train = h2o.H2OFrame(_synthetic(40, seed=0))
    train["label"] = train["label"].asfactor()
    model = H2OGradientBoostingEstimator(ntrees=10, max_depth=3, seed=1)
    model.train(x=FEATURES, y="label", training_frame=train)
    out = tmp_path_factory.mktemp("mojo")
    mojo = Path(model.download_mojo(path=str(out), get_genmodel_jar=True))
    return model, mojo, out / "h2o-genmodel.jar"


@pytest.fixture(scope="module")
def scorer(numeric_model):
    _, mojo, jar = numeric_model
    return MojoScorer(mojo, jar)


def test_probabilities_match_cluster(numeric_model, scorer):
    model, _, _ = numeric_model
    assert jpype.isJVMStarted()
    assert scorer.classes == tuple(sorted(LABELS))
    assert scorer.feature_names == tuple(FEATURES)
    test = _synthetic(10, seed=7)
    test.loc[0, "f03"] = np.nan  # missing value
    # Cluster predictions taken after the in-process JVM started: both JVMs coexist.
    expected, labels = _cluster_proba(model, test, scorer.classes)
    shuffled = test[["label", *FEATURES[::-1]]]  # extra column and another order
    proba = scorer.predict_proba(shuffled)
    assert proba.dtype == np.float64
    assert proba.shape == (len(test), len(LABELS))
    np.testing.assert_allclose(proba, expected, atol=1e-5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert list(np.asarray(scorer.classes)[proba.argmax(axis=1)]) == list(labels)


def test_missing_columns_raise(scorer):
    frame = _synthetic(2, seed=3).drop(columns=["f05", "f11"])
    with pytest.raises(ValueError, match=r"f05, f11"):
        scorer.predict_proba(frame)


def test_single_rows_are_fast(scorer):
    data = _synthetic(50, seed=5)[FEATURES]
    rows = [data.iloc[[i]] for i in range(len(data))]
    for row in rows[:20]:  # warm-up (JIT)
        scorer.predict_proba(row)
    start = time.perf_counter()
    for row in rows:
        scorer.predict_proba(row)
    elapsed = time.perf_counter() - start
    print(f"MojoScorer: {elapsed / len(rows) * 1e3:.3f} ms per single-row call ({len(rows)} calls)")
    assert len(rows) == 200
    assert elapsed < 1.0


def test_forked_child_refuses_inherited_jvm(scorer):
    frame = _synthetic(1, seed=4)
    pid = os.fork()
    if pid == 0:  # child: must raise before touching the inherited JVM
        try:
            scorer.predict_proba(frame)
        except RuntimeError as exc:
            os._exit(0 if "fork" in str(exc) else 2)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert scorer.predict_proba(frame).shape == (4, 4)  # parent unaffected


def test_categorical_model_uses_wrapper(cluster, scorer, tmp_path):
    """A second scorer reuses the JVM; categorical levels (unknown -> NA) match the cluster."""
    rng = np.random.default_rng(11)
    frame = _synthetic(30, seed=2)[[*FEATURES[:5], "label"]]
    frame["colour"] = rng.choice(["red", "green", "blue"], size=len(frame))
    train = h2o.H2OFrame(frame, column_types={"colour": "enum", "label": "enum"})
    model = H2OGradientBoostingEstimator(ntrees=5, max_depth=3, seed=1)
    model.train(x=[*FEATURES[:5], "colour"], y="label", training_frame=train)
    mojo = model.download_mojo(path=str(tmp_path), get_genmodel_jar=True)
    cat_scorer = MojoScorer(mojo, tmp_path / "h2o-genmodel.jar")
    test = frame.head(8).copy()
    test.loc[test.index[:2], "colour"] = "purple"
    proba = cat_scorer.predict_proba(test)
    expected, _ = _cluster_proba(model, test, cat_scorer.classes)  # unseen level -> NA too
    np.testing.assert_allclose(proba, expected, atol=1e-5)


def test_find_java_home_without_java(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaNotFoundError, match="openjdk"):
        find_java_home()


def test_find_java_home_prefers_valid_java_home(monkeypatch, tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "java").write_text("")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    assert find_java_home() == tmp_path
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "missing"))  # invalid: falls back to PATH
    if shutil.which("java") is None:
        pytest.skip("no java on PATH")
    assert (find_java_home() / "bin" / "java").exists()


def test_find_jvm_library():
    if not _java_present():
        pytest.skip("java not found")
    assert find_jvm_library().is_file()
