"""`kill -9` of `ser train` and `ser promote`: @champion stays put, loads and serves.

Real `ser` subprocesses on a small synthetic corpus with the sklearn families of
experiments/demo.yaml at tiny budgets, each test on its own copy of an MLflow sqlite store
whose @champion was set by a first, clean train + promote.  Every kill is a SIGKILL of the
process group, sent the moment the store shows the point wanted (a running child run, a
new model version, an alias, the decision tags), watched through a read-only connection.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from experiments.tracking.registry import CHALLENGER, CHAMPION, PromotionError, promote
from experiments.tracking.runs import log_served_model
from flows.promote import promote_model
from flows.train import train_models
from ser_features.demo_corpus import generate_demo_corpus

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

PROJECT = Path(__file__).resolve().parents[1]
SHARED_RAVDESS = PROJECT.parent / "shared" / "data" / "ravdess"
SER = Path(sys.executable).with_name("ser")
MODEL = "ser-kill-faults"
WEAK = {"hidden_layer_sizes": [[2]], "alpha": [50.0]}  # the first champion: near chance


def write_config(root: Path, data: Path) -> Path:
    """experiments/demo.yaml with only the sklearn families, tiny budgets, paths in ``root``."""
    config = yaml.safe_load((PROJECT / "experiments" / "demo.yaml").read_text())
    config["name"] = "kill-faults"
    config["data"].update(folders=[str(data)], features_dir=str(root / "features"))
    config["protocol"]["test_speakers"] = ["synthetic_demo_03"]
    config["trainers"] = {
        "sklearn_mlp": {"param_grid": WEAK, "cv_folds": 2, "max_iter": 100},
        "sklearn_linear": {"param_grid": {"C": [0.01, 0.1]}, "cv_folds": 2},
    }
    config["tracking"]["experiment"] = "kill-faults"
    config["registry"]["model_name"] = MODEL
    config["serving"]["session_model"] = []
    path = root / "kill-faults.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A store whose @champion (v1, weak) came from a clean train + promote, and one more
    finished training run whose best model is better (the next promotion would move it)."""
    import prefect.settings

    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    root = tmp_path_factory.mktemp("kill-faults")
    generate_demo_corpus(root / "demo", n_speakers=3)
    config = write_config(root, root / "demo")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    mp.chdir(root)  # the local artifact root is mlruns/artifacts under the working folder
    weak = train_models(config_path=str(config), families=["sklearn_mlp"])
    first = promote_model(config_path=str(config))
    strong = train_models(config_path=str(config), families=["sklearn_linear"])
    mp.undo()
    assert first.promoted and first.version == "1"
    assert strong.best("uar").metrics["uar"] > weak.best("uar").metrics["uar"], (
        "no better candidate"
    )
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value(),  # the session's server
        "PATH": f"{SER.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    clip = a_real_clip(root / "demo")
    yield {"root": root, "config": config, "env": env, "strong": strong.parent_run_id, "clip": clip}
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


@pytest.fixture
def store(template, tmp_path, monkeypatch):
    """This test's own copy of the store (the artifact root is the template's)."""
    db = tmp_path / "mlflow.db"
    shutil.copyfile(template["root"] / "mlflow.db", db)
    uri = f"sqlite:///{db}"
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield {**template, "db": db, "env": {**template["env"], "MLFLOW_TRACKING_URI": uri}}
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


# --- watching the store and killing -------------------------------------------------------


def query(db: Path, sql: str, *args: object) -> list[tuple]:
    """Read the store directly (read-only, no MLflow in between), as an observer would."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as connection:
        return connection.execute(sql, args).fetchall()


def parent_runs(db: Path) -> dict[str, str]:
    rows = query(
        db,
        "SELECT r.run_uuid, r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
        "WHERE t.key = 'role' AND t.value = 'parent'",
    )
    return dict(rows)


def child_runs(db: Path, parent: str) -> dict[str, str]:
    """``{model_family: status}`` of the children of ``parent``."""
    rows = query(
        db,
        "SELECT f.value, r.status FROM runs r "
        "JOIN tags p ON p.run_uuid = r.run_uuid AND p.key = 'mlflow.parentRunId' "
        "JOIN tags f ON f.run_uuid = r.run_uuid AND f.key = 'model_family' WHERE p.value = ?",
        parent,
    )
    return dict(rows)


def versions(db: Path) -> set[str]:
    rows = query(db, "SELECT version FROM model_versions WHERE name = ?", MODEL)
    return {str(version) for (version,) in rows}


def alias(db: Path, name: str) -> str | None:
    rows = query(
        db, "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?", MODEL, name
    )
    return str(rows[0][0]) if rows else None


def version_tags(db: Path, version: str) -> set[str]:
    rows = query(
        db, "SELECT key FROM model_version_tags WHERE name = ? AND version = ?", MODEL, version
    )
    return {key for (key,) in rows}


def start_ser(store: dict, *args: str, log: Path) -> subprocess.Popen:
    with log.open("w") as sink:
        return subprocess.Popen(
            [str(SER), *args, "--config", str(store["config"])],
            cwd=store["root"],
            env=store["env"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def run_ser(store: dict, *args: str, log: Path) -> str:
    """Run a `ser` command to the end; fail with its output unless it succeeded."""
    process = start_ser(store, *args, log=log)
    process.wait(timeout=300)
    output = log.read_text()
    assert process.returncode == 0, f"ser {' '.join(args)} exited {process.returncode}:\n{output}"
    return output


def kill_when(
    process: subprocess.Popen, reached: Callable[[], bool], log: Path, interval: float = 0.01
) -> None:
    """SIGKILL the process group of ``process`` as soon as ``reached()`` is true."""
    deadline = time.monotonic() + 240
    while not reached():
        if process.poll() is not None:
            pytest.fail(f"finished (exit {process.returncode}) before the kill point:\n"
                        f"{log.read_text()[-3000:]}")  # fmt: skip
        assert time.monotonic() < deadline, "kill point never reached"
        time.sleep(interval)
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while group_alive(process.pid):  # nothing of the group survives (zombies are reaped)
        assert time.monotonic() < deadline, "part of the killed process group survived"
        time.sleep(0.1)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# --- what must hold after every kill ------------------------------------------------------


def a_real_clip(demo: Path) -> Path:
    """A RAVDESS clip from ../shared/data; a synthetic one from ``demo`` where that is absent."""
    clips = sorted(SHARED_RAVDESS.glob("Actor_01/*.flac")) or sorted(demo.rglob("*.wav"))
    return clips[0]


def predicts(model_uri: str, clip: Path) -> dict:
    """Load ``model_uri`` as it is served and score ``clip`` with it."""
    model = mlflow.pyfunc.load_model(model_uri)
    audio = base64.b64encode(clip.read_bytes()).decode()
    answer = model.predict(pd.DataFrame({"audio": [audio]})).iloc[0]
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert answer["emotion"] in answer["probabilities"]
    return answer


def check_champion(store: dict, expected: str) -> None:
    """@champion is ``expected`` and serves; every aliased version loads and scores."""
    assert alias(store["db"], CHAMPION) == expected
    predicts(f"models:/{MODEL}@{CHAMPION}", store["clip"])
    challenger = alias(store["db"], CHALLENGER)
    if challenger not in (None, expected):
        predicts(f"models:/{MODEL}@{CHALLENGER}", store["clip"])


def source_parents(store: dict) -> dict[str, str]:
    """``{version: parent training run}`` of every registered version."""
    client = MlflowClient()
    return {
        str(v.version): client.get_run(v.run_id).data.tags["mlflow.parentRunId"]
        for v in client.search_model_versions(f"name = '{MODEL}'")
    }


def check_rerun(store: dict, tmp_path: Path) -> None:
    """After a kill, train + promote complete; the champion comes from a finished run."""
    before = set(parent_runs(store["db"]))
    run_ser(store, "train", "--family", "sklearn_mlp", log=tmp_path / "retrain.log")
    (new_run,) = set(parent_runs(store["db"])) - before
    assert parent_runs(store["db"])[new_run] == "FINISHED"
    output = run_ser(store, "promote", log=tmp_path / "repromote.log")
    champion = alias(store["db"], CHAMPION)
    assert "promoted to @champion" in output or "kept the champion" in output, output
    newest = max(versions(store["db"]), key=int)
    assert source_parents(store)[newest] == new_run, "promotion took another run than the new one"
    assert "promotion.decision" in version_tags(store["db"], newest)
    assert parent_runs(store["db"])[source_parents(store)[champion]] == "FINISHED"
    check_champion(store, champion)


# --- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("point", ["first family training", "between the two families"])
def test_a_killed_training_run_is_never_promoted(store, tmp_path, point):
    db = store["db"]
    before = set(parent_runs(db))

    def reached() -> bool:
        new = set(parent_runs(db)) - before
        if not new:
            return False
        children = child_runs(db, next(iter(new)))
        if point == "first family training":
            return children.get("sklearn_mlp") == "RUNNING"
        return children.get("sklearn_mlp") == "FINISHED" and "sklearn_linear" in children

    train = start_ser(store, "train", log=tmp_path / "train.log")
    kill_when(train, reached, tmp_path / "train.log")
    (killed,) = set(parent_runs(db)) - before
    assert parent_runs(db)[killed] == "RUNNING"  # what a SIGKILL leaves in the store
    check_champion(store, "1")

    # Promotion passes over the killed run: it takes the newest *finished* one.
    run_ser(store, "promote", log=tmp_path / "promote.log")
    parents = source_parents(store)
    assert killed not in parents.values(), "a model of the killed training run was registered"
    champion = alias(db, CHAMPION)
    assert parents[champion] in {store["strong"], parents["1"]}
    check_champion(store, champion)
    check_rerun(store, tmp_path)


PROMOTION_POINTS = {
    # the new version exists, nothing points at it yet (it is being loaded and checked)
    "version registered": lambda db, new: new in versions(db),
    # @challenger points at it; both models are being scored on the same test clips
    "challenger aliased": lambda db, new: alias(db, CHALLENGER) == new,
    # the comparison is being written into the version's tags, just before @champion moves
    "decision being recorded": lambda db, new: "model_family" in version_tags(db, new),
}


def test_promotion_killed_at_each_step_leaves_the_champion_serving(store, tmp_path):
    """Three promotions of a better model, each SIGKILLed at a later step; then one that is
    left alone completes and moves the champion."""
    db = store["db"]
    for step, (point, reached) in enumerate(PROMOTION_POINTS.items()):
        new = str(max(int(v) for v in versions(db)) + 1)
        log = tmp_path / f"promote-{step}.log"
        promotion = start_ser(store, "promote", log=log)
        kill_when(promotion, partial(reached, db, new), log, interval=0.001)
        assert new in versions(db), point
        check_champion(store, "1")
        if point == "version registered":
            assert alias(db, CHALLENGER) != new, "a version was aliased before it was verified"

    output = run_ser(store, "promote", log=tmp_path / "promote-completes.log")
    assert "promoted to @champion" in output, output
    champion = alias(db, CHAMPION)
    assert int(champion) > int(new) and source_parents(store)[champion] == store["strong"]
    check_champion(store, champion)


def own_tags(run: mlflow.entities.Run) -> dict[str, str]:
    return {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}


def test_a_model_whose_artifacts_are_incomplete_is_never_aliased(store):
    """A finished training run whose logged model lost a file (an upload cut short): it is
    registered, fails to load, and neither alias moves to it."""
    client = MlflowClient()
    strong_parent = client.get_run(store["strong"])
    (strong,) = client.search_runs(
        [strong_parent.info.experiment_id],
        f"tags.mlflow.parentRunId = '{store['strong']}'",
    )
    local = Path(mlflow.artifacts.download_artifacts(strong.data.tags["served_model_uri"]))
    audio = base64.b64encode(store["clip"].read_bytes()).decode()
    example = predicts(strong.data.tags["served_model_uri"], store["clip"])
    with (
        mlflow.start_run(
            experiment_id=strong_parent.info.experiment_id, tags=own_tags(strong_parent)
        ) as parent,
        mlflow.start_run(nested=True, tags=own_tags(strong)) as child,
    ):
        mlflow.log_params(strong.data.params)
        mlflow.log_metrics(strong.data.metrics)
        split = mlflow.artifacts.load_dict(f"runs:/{strong.info.run_id}/split/test_paths.json")
        mlflow.log_dict(split, "split/test_paths.json")
        uri = log_served_model(
            local / "artifacts" / "predictor",
            example_audio_b64=audio,
            example_output=pd.DataFrame([example]),
        )
        mlflow.set_tag("served_model_uri", uri)
    logged = mlflow.get_logged_model(uri.removeprefix("models:/"))
    code = Path(logged.artifact_location.removeprefix("file://")) / "emotion_model_code.py"
    code.unlink()  # the served model's code never arrived

    with pytest.raises(PromotionError, match="does not load"):
        promote(parent.info.run_id, model_name=MODEL)
    broken = max(versions(store["db"]), key=int)
    assert client.get_model_version(MODEL, broken).run_id == child.info.run_id
    assert alias(store["db"], CHALLENGER) != broken
    assert version_tags(store["db"], broken) >= {"promotion.decision"}
    check_champion(store, "1")
