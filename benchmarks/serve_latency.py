"""Latency of `mlflow models serve` for a champion of each family, on a 4-second clip.

Run by hand (not in CI), from the repository root::

    .venv/bin/python benchmarks/serve_latency.py [--requests 200]

It trains one model per family on the synthetic demo corpus into a scratch MLflow store
(fast settings), makes each the ``@champion`` of its own registered model, starts the
scoring server exactly as ``ser serve`` does, and prints p50/p95 latency sequentially and
with 8 concurrent clients, requests/s, and each family's p50 relative to sklearn's.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import yaml

FAMILIES = ("sklearn_mlp", "sklearn_linear", "keras_ann", "keras_cnn", "h2o_automl")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess"


def four_second_clip(fallback: Path) -> str:
    """Base64 of a 4.0 s WAV: a real RAVDESS clip when available, else demo speech."""
    clips = sorted(SHARED.glob("Actor_01/*.flac")) or sorted(fallback.rglob("*.wav"))
    samples, rate = sf.read(clips[0], dtype="float32")
    samples = samples.mean(axis=1) if samples.ndim > 1 else samples
    samples = np.resize(samples, 4 * rate)
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV")
    return base64.b64encode(buffer.getvalue()).decode()


def request(url: str, body: bytes) -> float:
    started = time.perf_counter()
    call = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(call, timeout=60) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


def measure(url: str, body: bytes, count: int, clients: int) -> tuple[float, float, float]:
    """(p50 ms, p95 ms, requests/s) for ``count`` requests from ``clients`` threads."""
    for _ in range(5):
        request(url, body)
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(lambda _: request(url, body), range(count)))
    elapsed = time.perf_counter() - started
    return float(np.percentile(latencies, 50)), float(np.percentile(latencies, 95)), count / elapsed


def train_demo_models(
    workdir: Path, families: list[str], *, features: str, serving: dict[str, Any] | None = None
) -> tuple[str, Any]:
    """Train ``families`` (fast settings) on a 6-speaker SYNTHETIC demo corpus in ``workdir``.

    Uses a scratch MLflow store ``workdir/mlflow.db`` (set as ``MLFLOW_TRACKING_URI`` for this
    process); returns (tracking URI, the training report).  Shared with ``serve_load.py``.
    """
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri

    from flows.train import train_models
    from ser_features.demo_corpus import generate_demo_corpus

    demo = workdir / "demo"
    generate_demo_corpus(demo, n_speakers=6)
    config = {
        "name": "latency",
        "data": {
            "folders": [str(demo)],
            "features": features,
            "features_dir": str(workdir / "features"),
        },
        "protocol": {"test_speakers": ["synthetic_demo_06"]},
        "trainers": {
            "sklearn_mlp": {"param_grid": {"hidden_layer_sizes": [[256]]}, "cv_folds": 2},
            "sklearn_linear": {"param_grid": {"C": [0.01]}, "cv_folds": 2},
            "keras_ann": {"epochs": 30},
            "keras_cnn": {"epochs": 15},
            "h2o_automl": {"max_runtime_secs": 90, "max_models": 3, "nfolds": 3},
        },
        "tracking": {"experiment": "latency"},
        "serving": serving or {},
    }
    config_path = workdir / "latency.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return uri, train_models(config_path=str(config_path), families=families)


def make_champion(model_uri: str, name: str) -> None:
    """Register ``model_uri`` as a new version of ``name`` and alias it ``@champion``."""
    import mlflow

    version = mlflow.register_model(model_uri, name).version
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version)


def main() -> None:
    import flows

    flows.prefect_server_environment()  # before the first flow starts a Prefect server
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--features", default="spectral_prosodic", help="feature set served")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ser-latency-"))
    uri, report = train_demo_models(workdir, args.families, features=args.features)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from local_server import free_port, running

    from experiments.serving.command import serve_command, serving_environment

    body = json.dumps(
        {"dataframe_split": {"columns": ["audio"], "data": [[four_second_clip(workdir / "demo")]]}}
    ).encode()
    results = {}
    for family in report.families:
        if family.status != "FINISHED":
            print(f"{family.family}: training failed ({family.error}); skipped")
            continue
        name = f"latency-{family.family}"
        make_champion(family.model_uri, name)
        port = free_port()
        with running(
            serve_command(name, port=port),
            env=serving_environment(uri),
            log_path=workdir / f"{family.family}.log",
            ready_url=f"http://127.0.0.1:{port}/ping",
            timeout=240,
        ):
            url = f"http://127.0.0.1:{port}/invocations"
            sequential = measure(url, body, args.requests, 1)
            concurrent = measure(url, body, args.requests, 8)
        results[family.family] = (sequential, concurrent)
        print(
            f"{family.family:12s} sequential p50 {sequential[0]:6.1f} ms  p95 {sequential[1]:6.1f}"
            f" ms  {sequential[2]:5.1f} req/s | 8 clients p50 {concurrent[0]:6.1f} ms  p95 "
            f"{concurrent[1]:6.1f} ms  {concurrent[2]:5.1f} req/s",
            flush=True,
        )
    if "sklearn_mlp" in results:
        reference = results["sklearn_mlp"][0][0]
        for family, (sequential, _) in results.items():
            print(f"p50 ratio {family} / sklearn_mlp: {sequential[0] / reference:.2f}")


if __name__ == "__main__":
    main()
