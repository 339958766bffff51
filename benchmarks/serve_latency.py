"""Latency and throughput of `mlflow models serve` for a champion of each family.

Run by hand (not in CI), from the repository root, on an otherwise idle machine::

    .venv/bin/python benchmarks/serve_latency.py --features compare2016 [--requests 100]
    .venv/bin/python benchmarks/serve_latency.py --model ser-emotion   # a registry champion

Without ``--model`` it trains one model per family on the synthetic demo corpus into a
scratch MLflow store (fast settings; the description of a clip, not the model, dominates the
cost) and makes each the ``@champion`` of its own registered model; with it, the champion of
that registered model in ``MLFLOW_TRACKING_URI`` is measured. For a 4 s and a 30 s clip of
real speech it prints: the pyfunc's ``predict`` called in-process (p50), the same through
the scoring server started as ``ser serve`` starts it (one worker unless ``--workers``; every
answer logged and the server following ``@champion``, unless ``--bare``),
sequential p50/p95/p99 (the two measured in turns, one in-process call then one request),
requests/s with 1, 4 and 8 concurrent clients (4 s clip), the served/in-process p50 ratio,
and the cost of one request of 10 clips against one of 1 clip.
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

FAMILIES = ("sklearn_mlp", "sklearn_linear", "keras_ann", "keras_cnn", "h2o_automl", "fused")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess"


def clip_b64(fallback: Path, seconds: float) -> str:
    """Base64 of a WAV of ``seconds``: real RAVDESS speech (clips of actor 01 joined) when
    available, else demo speech."""
    clips = sorted(SHARED.glob("Actor_01/*.flac")) or sorted(fallback.rglob("*.wav"))
    pieces, rate, total = [], 16000, 0
    for path in clips:
        samples, rate = sf.read(path, dtype="float32")
        pieces.append(samples.mean(axis=1) if samples.ndim > 1 else samples)
        total += len(pieces[-1])
        if total >= seconds * rate:
            break
    samples = np.resize(np.concatenate(pieces), int(seconds * rate))
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV")
    return base64.b64encode(buffer.getvalue()).decode()


def clips_of(workdir: Path) -> dict[float, str]:
    """The 4 s and 30 s clips every figure uses, base64, by duration."""
    return {seconds: clip_b64(workdir / "demo", seconds) for seconds in (4.0, 30.0)}


def body_of(clips: list[str]) -> bytes:
    return json.dumps(
        {"dataframe_split": {"columns": ["audio"], "data": [[clip] for clip in clips]}}
    ).encode()


def request(url: str, body: bytes) -> float:
    started = time.perf_counter()
    call = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(call, timeout=120) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


def percentiles(latencies: list[float]) -> tuple[float, float, float]:
    return tuple(float(np.percentile(latencies, q)) for q in (50, 95, 99))  # type: ignore[return-value]


def throughput(url: str, body: bytes, count: int, clients: int) -> float:
    """Requests/s of ``count`` requests from ``clients`` concurrent threads."""
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda _: request(url, body), range(count)))
    return count / (time.perf_counter() - started)


def in_process_and_served(
    model: Any, url: str, clip: str, count: int
) -> tuple[float, tuple[float, float, float]]:
    """In-process p50 and served (p50, p95, p99) ms of one clip, ``count`` of each, after a
    warm-up.

    ``model`` is the served champion's pyfunc loaded in this process; each in-process
    ``predict`` is followed by one request to the server: both see the same machine at the
    same moments, so a slow spell of the machine does not land on one side of the ratio only.
    """
    import pandas as pd

    frame, body = pd.DataFrame({"audio": [clip]}), body_of([clip])
    for _ in range(3):
        model.predict(frame)
        request(url, body)
    local, served = [], []
    for _ in range(count):
        started = time.perf_counter()
        model.predict(frame)
        local.append((time.perf_counter() - started) * 1000)
        served.append(request(url, body))
    return float(np.median(local)), percentiles(served)


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
            "fused": {
                "members": {
                    "sklearn_linear": {"param_grid": {"C": [0.01]}},
                    "sklearn_mlp": {"param_grid": {"hidden_layer_sizes": [[256]]}},
                },
                "inner_folds": 2,
            },
        },
        "tracking": {"experiment": "latency"},
        "serving": serving or {},
    }
    config_path = workdir / "latency.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return uri, train_models(config_path=str(config_path), families=families)


def make_champion(model_uri: str, name: str) -> str:
    """Register ``model_uri`` as a new version of ``name``, alias it ``@champion``, and
    return the version."""
    import mlflow

    version = mlflow.register_model(model_uri, name).version
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version)
    return str(version)


def measure(
    label: str,
    name: str,
    uri: str,
    clips: dict[float, str],
    args: argparse.Namespace,
    workdir: Path,
) -> None:
    """Serve ``models:/name@champion`` as ``ser serve`` does and print its figures for
    ``clips`` (base64 audio by duration in seconds)."""
    import mlflow
    from local_server import free_port, running

    from experiments.serving.command import serve_command, serving_environment

    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    port = free_port()
    as_served: dict[str, Any] = {}  # what `ser serve` adds by default, unless --bare
    if not args.bare:
        as_served = {"follow": f"{name}@champion", "prediction_log": workdir / f"{label}-log"}
    with running(
        serve_command(name, port=port, workers=args.workers),
        env=serving_environment(uri, **as_served),
        log_path=workdir / f"{label}.log",
        ready_url=f"http://127.0.0.1:{port}/ping",
        timeout=240,
    ):
        url = f"http://127.0.0.1:{port}/invocations"
        for seconds, clip in clips.items():
            n = args.requests if seconds < 10 else max(10, args.requests // 5)
            local, (p50, p95, p99) = in_process_and_served(model, url, clip, n)
            line = (
                f"{label:14s} {seconds:4.0f} s clip: in-process {local:7.1f} | served "
                f"{p50:7.1f} / {p95:7.1f} / {p99:7.1f} | ratio {p50 / local:4.2f}"
            )
            if seconds < 10:
                rates = [throughput(url, body_of([clip]), n, c) for c in (1, 4, 8)]
                ten = float(np.median([request(url, body_of([clip] * 10)) for _ in range(5)]))
                line += f" | req/s {rates[0]:5.1f} {rates[1]:5.1f} {rates[2]:5.1f}"
                line += f" | 10 clips {ten / p50:4.2f}x"
            print(line, flush=True)


def main() -> None:
    import flows

    flows.prefect_server_environment()  # before the first flow starts a Prefect server
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--features", default="spectral_prosodic", help="feature set served")
    parser.add_argument("--workers", type=int, default=1, help="scoring processes")
    parser.add_argument(
        "--model", help="measure this registered model's @champion (MLFLOW_TRACKING_URI) instead"
    )
    parser.add_argument(
        "--bare",
        action="store_true",
        help="serve without the prediction log and the @champion follower (`ser serve` has both)",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # local_server
    workdir = Path(tempfile.mkdtemp(prefix="ser-latency-"))
    header = "ms: in-process p50 | served p50/p95/p99 | ratio; req/s at 1/4/8 clients (4 s clip)"
    header += "; 10-clip request / 1-clip request"
    header += "; bare server" if args.bare else "; prediction log on, following @champion"
    if args.model:
        import mlflow

        from experiments.tracking.runs import configure_tracking

        uri = configure_tracking()
        version = mlflow.MlflowClient().get_model_version_by_alias(args.model, "champion")
        run = mlflow.get_run(version.run_id)
        label = run.data.tags.get("model_family", args.model)
        features = run.data.params.get("feature_set", "?")
        print(f"{args.model}@champion (v{version.version}, {features}), ", end="")
        print(f"{args.workers} worker(s), {args.requests} requests per figure; {header}")
        measure(label, args.model, uri, clips_of(workdir), args, workdir)
        return
    uri, report = train_demo_models(workdir, args.families, features=args.features)
    clips = clips_of(workdir)
    print(
        f"features {args.features}, {args.workers} worker(s), {args.requests} requests per ", end=""
    )
    print(f"figure; {header}")
    for family in report.families:
        if family.status != "FINISHED":
            print(f"{family.family}: training failed ({family.error}); skipped")
            continue
        name = f"latency-{family.family}"
        make_champion(family.model_uri, name)
        measure(family.family, name, uri, clips, args, workdir)


if __name__ == "__main__":
    main()
