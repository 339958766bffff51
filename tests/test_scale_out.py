"""Scale-out paths against real services on 127.0.0.1.

* extraction on a local 2-worker Dask cluster (prefect-dask) equals the default process pool;
* H2O AutoML trains on an already running, separately started H2O JVM given by URL;
* the training flow logs to an ``mlflow server`` whose backend store is PostgreSQL
  (``scripts/start_postgres.sh``; ``scripts/ensure_postgres.sh`` installs PostgreSQL in CI).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import requests
import yaml
from ci_requirements import require
from synthetic_features import speaker_blobs

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
START_POSTGRES = ROOT / "scripts" / "start_postgres.sh"
BIN = Path(sys.executable).parent


def free_port(pair: bool = False) -> int:
    """A free TCP port on 127.0.0.1 (with ``pair``, the next port is free too, as H2O needs)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if not pair:
            return port
        if port < 65535:
            with socket.socket() as sock, contextlib.suppress(OSError):
                sock.bind(("127.0.0.1", port + 1))
                return port
    raise RuntimeError("no free pair of ports found")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def wait_until_up(
    url: str, proc: subprocess.Popen, log: Path, timeout: float, ok: Callable = lambda r: True
) -> requests.Response:
    """Poll ``url`` until it answers 200 (and ``ok``); fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited with {proc.returncode}:\n{tail(log)}")
        with contextlib.suppress(requests.RequestException, ValueError):
            response = requests.get(url, timeout=5)
            if response.status_code == 200 and ok(response):
                return response
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {timeout:.0f} s:\n{tail(log)}")


def stop_process(proc: subprocess.Popen, group: bool = False, grace: float = 30) -> None:
    """Terminate ``proc`` (and its process group when it leads one), then kill it if needed."""
    if proc.poll() is not None:
        return
    send = (lambda sig: os.killpg(proc.pid, sig)) if group else proc.send_signal
    with contextlib.suppress(ProcessLookupError):
        send(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            send(signal.SIGKILL)
        proc.wait(timeout=30)


# --- 1. Dask ------------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.timeout(900)
def test_extraction_on_a_dask_cluster_equals_the_process_pool(shared_data, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect_dask import DaskTaskRunner

    from flows.extract import BATCH_SIZE, extract_features

    actor = tmp_path / "ravdess" / "Actor_01"
    shutil.copytree(shared_data / "ravdess" / "Actor_01", actor)
    n_clips = len([p for p in actor.iterdir() if p.suffix in {".flac", ".wav"}])
    assert n_clips == 60

    pool_out, dask_out = tmp_path / "pool", tmp_path / "dask"
    pool = extract_features([str(actor.parent)], str(pool_out), feature_set="seed180", workers=2)
    runner = DaskTaskRunner(
        cluster_kwargs={
            "n_workers": 2,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
    )
    state = extract_features.with_options(task_runner=runner)(
        [str(actor.parent)],
        str(dask_out),
        feature_set="seed180",
        on_task_runner=True,
        return_state=True,
    )
    assert state.is_completed(), state.message
    on_dask = state.result()

    assert (pool.rows, pool.extracted, pool.quarantined) == (60, 60, 0)
    assert (on_dask.rows, on_dask.extracted, on_dask.quarantined) == (60, 60, 0)
    expected = pd.read_parquet(pool_out / "features.parquet")
    got = pd.read_parquet(dask_out / "features.parquet")
    assert got["path"].tolist() == expected["path"].tolist()
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=0, atol=1e-9)
    for out in (pool_out, dask_out):
        meta = pq.read_schema(out / "features.parquet").metadata
        assert meta[b"ser.feature_set"] == b"seed180"
        assert meta[b"ser.feature_set_version"] == b"1"

    # The batches were task runs recorded by the session's Prefect server (the Dask workers,
    # separate processes, reported to it rather than to a server of their own).
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    described = [run for run in task_runs if run.name.startswith("describe-clips")]
    assert len(described) == -(-n_clips // BATCH_SIZE)
    assert all(run.state is not None and run.state.is_completed() for run in described)


# --- 2. H2O by URL ------------------------------------------------------------------------


@contextlib.contextmanager
def standalone_h2o(tmp: Path) -> Iterator[str]:
    """A separately started H2O JVM on 127.0.0.1 (not by this process's h2o client)."""
    import h2o

    jar = Path(h2o.__file__).parent / "backend" / "bin" / "h2o.jar"
    assert jar.is_file(), f"h2o.jar not found at {jar}"
    port = free_port(pair=True)  # H2O also binds port + 1 for its internal traffic
    flatfile = tmp / "flatfile.txt"
    flatfile.write_text(f"127.0.0.1:{port}\n")  # no multicast discovery of other clouds
    log = tmp / "h2o.out"
    # fmt: off
    command = [
        "java", "-Xmx1g", "-jar", str(jar),
        "-ip", "127.0.0.1", "-port", str(port), "-name", "ser-test",
        "-ice_root", str(tmp / "ice"), "-flatfile", str(flatfile), "-nthreads", "2",
    ]
    # fmt: on
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(
            f"{url}/3/Cloud", proc, log, timeout=180, ok=lambda r: r.json().get("cloud_healthy")
        )
        yield url
    finally:
        stop_process(proc)


@pytest.mark.timeout(600)
def test_h2o_automl_trains_on_a_cluster_given_by_url(tmp_path):
    if shutil.which("java") is None:
        pytest.skip("java not found (apt-get install openjdk-17-jre-headless): H2O needs a JVM")
    import h2o
    import h2o.h2o as h2o_module

    from experiments.families.h2o_trainer import H2OAutoMLTrainer

    features, labels, speakers = speaker_blobs(
        ["neutral", "happy", "angry"], n_speakers=6, per_class=8, n_features=10, centre_scale=2.0
    )
    previous = h2o_module.h2oconn  # another test's local cluster, if any: restored below
    try:
        with standalone_h2o(tmp_path) as url:
            cloud = requests.get(f"{url}/3/Cloud", timeout=10).json()
            assert cloud["cloud_name"] == "ser-test"
            trainer = H2OAutoMLTrainer(
                h2o_url=url,
                max_models=1,
                max_runtime_secs=30,
                nfolds=2,
                exclude_algos=["DeepLearning", "StackedEnsemble", "XGBoost"],
            )
            trainer.fit(features, labels, speakers)
            assert h2o.connection().base_url.rstrip("/") == url
            assert h2o.connection().local_server is None  # connected, not started by h2o.init
            leader = trainer.leader_.model_id
            models = requests.get(f"{url}/3/Models", timeout=30).json()["models"]
            assert leader in {m["model_id"]["name"] for m in models}
            assert trainer.params()["fold_strategy"] == "speaker"
            proba = trainer.predict_proba(features.head(12))
            assert proba.shape == (12, 3)
            np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
            trainer.release()
            models = requests.get(f"{url}/3/Models", timeout=30).json()["models"]
            assert leader not in {m["model_id"]["name"] for m in models}
    finally:
        current = h2o_module.h2oconn
        if current is not None and current is not previous:
            with contextlib.suppress(Exception):
                current.close()
        h2o_module.h2oconn = previous


# --- 3. MLflow on PostgreSQL --------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding ``initdb`` (Debian's layout)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.parts[-3].split(".")],
    )
    return found[-1].parent if found else None


@contextlib.contextmanager
def postgres(data_dir: Path, port: int) -> Iterator[str]:
    """``scripts/start_postgres.sh`` in ``data_dir``; yields the SQLAlchemy URI."""
    started = subprocess.run(
        ["bash", str(START_POSTGRES), str(data_dir), str(port)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        assert started.returncode == 0, f"start_postgres.sh failed:\n{started.stderr}"
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(
            ["bash", str(START_POSTGRES), "stop", str(data_dir)],
            capture_output=True,
            timeout=120,
        )


@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, log: Path) -> Iterator[str]:
    port = free_port()
    # fmt: off
    command = [
        str(BIN / "mlflow"), "server",
        "--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]
    # fmt: on
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/health", proc, log, timeout=240)
        yield url
    finally:
        stop_process(proc, group=True)


def as_dict(pairs: list[dict] | None) -> dict:
    """MLflow REST ``[{"key": k, "value": v}, ...]`` as ``{k: v}``."""
    return {pair["key"]: pair["value"] for pair in pairs or []}


def write_config(folder: Path, data: Path) -> Path:
    config = {
        "name": "on-postgres",
        "data": {
            "folders": [str(data)],
            "features": "seed180",
            "features_dir": str(folder / "features"),
        },
        "protocol": {"kind": "speaker_independent", "test_speakers": ["synthetic_demo_03"]},
        "trainers": {"sklearn_mlp": {"param_grid": {"hidden_layer_sizes": [[32]]}, "cv_folds": 2}},
        "tracking": {"experiment": "ser-postgres"},
        "registry": {"model_name": "ser-emotion", "metric": "uar"},
    }
    path = folder / "on-postgres.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.timeout(900)
def test_training_logs_to_an_mlflow_server_backed_by_postgresql(tmp_path, monkeypatch):
    bindir = postgres_bindir()
    require(
        bindir is not None,
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); "
        "run `bash scripts/ensure_postgres.sh`",
    )
    try:
        import psycopg2
    except ImportError:
        psycopg2 = None
    require(psycopg2 is not None, "psycopg2 is not installed (pip install psycopg2-binary)")
    import mlflow

    from flows.train import train_models
    from ser_features.demo_corpus import generate_demo_corpus

    data = tmp_path / "demo"
    generate_demo_corpus(data, n_speakers=3)
    config = write_config(tmp_path, data)
    # The postgres OS user must reach the data folder: a fresh folder in the temp dir, not the
    # pytest tmp_path (private to this user).
    pg_dir = Path(tempfile.mkdtemp(prefix="ser-pg-"))
    pg_dir.chmod(0o755)
    # configure_tracking() sets MLflow's process-wide URIs: put them back afterwards.
    tracking_before = mlflow.tracking._tracking_service.utils._tracking_uri
    registry_before = mlflow.tracking._model_registry.utils._registry_uri
    try:
        with (
            postgres(pg_dir, free_port()) as db_uri,
            mlflow_server(db_uri, tmp_path / "artifacts", tmp_path / "mlflow.out") as url,
        ):
            assert db_uri.startswith("postgresql://mlflow:mlflow@127.0.0.1:")
            monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
            monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
            monkeypatch.chdir(tmp_path)
            report = train_models(config_path=str(config))

            [family] = report.families
            assert (family.family, family.status) == ("sklearn_mlp", "FINISHED"), family.error
            response = requests.post(
                f"{url}/api/2.0/mlflow/runs/search",
                json={"experiment_ids": [report.experiment_id], "max_results": 100},
                timeout=30,
            )
            response.raise_for_status()
            runs = {run["info"]["run_id"]: run for run in response.json()["runs"]}
            assert set(runs) == {report.parent_run_id, family.run_id}
            parent, child = runs[report.parent_run_id], runs[family.run_id]
            metrics = {r: as_dict(run["data"].get("metrics")) for r, run in runs.items()}
            tags = {r: as_dict(run["data"].get("tags")) for r, run in runs.items()}
            assert parent["info"]["status"] == child["info"]["status"] == "FINISHED"
            assert tags[family.run_id]["mlflow.parentRunId"] == report.parent_run_id
            assert tags[family.run_id]["model_family"] == "sklearn_mlp"
            assert metrics[family.run_id]["uar"] == pytest.approx(family.metrics["uar"])
            assert 0.0 <= metrics[family.run_id]["uar"] <= 1.0
            assert metrics[report.parent_run_id]["best_uar"] == pytest.approx(family.metrics["uar"])

            # The runs are rows of PostgreSQL's `runs` table (not of some local fallback store).
            with contextlib.closing(psycopg2.connect(db_uri)) as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT run_uuid, status FROM runs WHERE experiment_id = %s",
                    (int(report.experiment_id),),
                )
                rows = dict(cur.fetchall())
                cur.execute(
                    "SELECT value FROM metrics WHERE run_uuid = %s AND key = 'uar'",
                    (family.run_id,),
                )
                uar_rows = [value for (value,) in cur.fetchall()]
            assert rows == {report.parent_run_id: "FINISHED", family.run_id: "FINISHED"}
            assert uar_rows == [pytest.approx(family.metrics["uar"])]
            artifacts = list((tmp_path / "artifacts").rglob("MLmodel"))
            assert artifacts, "the served model was uploaded through the server's artifact proxy"
    finally:
        with contextlib.suppress(Exception):
            mlflow.end_run()
        mlflow.set_tracking_uri(tracking_before)
        mlflow.set_registry_uri(registry_before)
        shutil.rmtree(pg_dir, ignore_errors=True)
