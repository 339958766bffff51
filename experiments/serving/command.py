"""How the champion is served: the ``mlflow models serve`` command and the environment it needs.

Limits of the server (both environment variables of the server process, so they hold for
every model it serves; ``ser serve --max-request-mb/--timeout`` set them):

- ``SER_MAX_REQUEST_MB`` (default 8 MiB): a larger request body gets HTTP 413.
- ``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT`` (MLflow's own ``--timeout``, default 60 s): a
  request still running after it gets HTTP 504, and the model stops describing it.

Both are enforced by :mod:`experiments.serving.limits`, which uvicorn loads as its HTTP
protocol (``UVICORN_HTTP``); error answers are MLflow-style JSON naming the problem.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from experiments.engines.java import java_home_or_none
from experiments.serving.alias_follower import FOLLOW_ENV, INTERVAL_ENV
from experiments.serving.limits import MAX_REQUEST_MB_ENV
from experiments.serving.prediction_log import LOG_ENV
from experiments.tracking.registry import CHAMPION

#: uvicorn's HTTP protocol for the scoring server: h11 behind the request limits.
HTTP_PROTOCOL = "experiments.serving.limits:LimitedH11Protocol"
#: Memory one scoring worker may take (a ComParE champion's worker settles near 450 MiB).
WORKER_BUDGET_MB = 768
#: Numeric libraries use one thread per worker: workers, not threads, use the cores.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def default_workers(*, cpus: int | None = None, available_mb: float | None = None) -> int:
    """One scoring worker per usable core, no more than half the available memory holds.

    The description of a clip is single-threaded CPU work, so throughput grows with worker
    processes up to the number of cores and not beyond; each worker holds its own copy of
    the model (:data:`WORKER_BUDGET_MB` each), so memory caps the count.
    """
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if available_mb is None:
        available_mb = _available_memory_mb()
    by_memory = int(available_mb / 2 // WORKER_BUDGET_MB) if available_mb else cpus or 1
    return max(1, min(cpus or 1, by_memory))


def _available_memory_mb() -> float | None:
    """``MemAvailable`` from ``/proc/meminfo`` (None where there is none)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def model_uri(model_name: str, alias: str = CHAMPION) -> str:
    """``models:/NAME@alias``."""
    return f"models:/{model_name}@{alias}"


def serving_environment(
    tracking_uri: str,
    *,
    max_request_mb: float | None = None,
    follow: str | None = None,
    follow_interval_s: float | None = None,
    prediction_log: str | Path | None = None,
) -> dict[str, str]:
    """The process environment for the scoring server: registry, limits, Keras, Java, PATH.

    The virtualenv's ``bin`` goes first on PATH (the server starts ``uvicorn`` from there).
    ``max_request_mb`` sets ``SER_MAX_REQUEST_MB``; otherwise an inherited value or 8 MiB.
    ``follow`` (``NAME@alias``) makes every worker follow that alias, looking every
    ``follow_interval_s`` seconds (see :mod:`experiments.serving.alias_follower`).
    ``prediction_log`` is the folder every answer is logged to
    (:mod:`experiments.serving.prediction_log`).
    """
    env = dict(os.environ)
    if prediction_log is not None:
        env[LOG_ENV] = str(Path(prediction_log).resolve())
    if follow is not None:
        env[FOLLOW_ENV] = follow
    if follow_interval_s is not None:
        env[INTERVAL_ENV] = f"{follow_interval_s:g}"
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    env["MLFLOW_REGISTRY_URI"] = tracking_uri
    env["UVICORN_HTTP"] = HTTP_PROTOCOL
    if max_request_mb is not None:
        env[MAX_REQUEST_MB_ENV] = f"{max_request_mb:g}"
    env.setdefault("KERAS_BACKEND", "torch")
    # glibc gives every thread that allocates its own arena; the scoring threads' decoded
    # audio and feature blocks then stay resident as fragmentation. Two arenas bound it.
    env.setdefault("MALLOC_ARENA_MAX", "2")
    for name, value in ONE_THREAD.items():
        env.setdefault(name, value)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    java_home = java_home_or_none(env) if "JAVA_HOME" not in env else None
    if java_home is not None:  # for an H2O MOJO champion, scored through JPype
        env["JAVA_HOME"] = str(java_home)
    return env


def serve_command(
    model_name: str,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    timeout_s: int | None = None,
) -> list[str]:
    """The ``mlflow models serve`` command line for ``models:/NAME@champion``.

    ``timeout_s`` is MLflow's ``--timeout``; without it MLflow reads
    ``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT`` (default 60 s).
    """
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    timeout = ["--timeout", str(timeout_s)] if timeout_s is not None else []
    return [
        str(mlflow_cli),
        "models",
        "serve",
        "-m",
        model_uri(model_name),
        "--env-manager",
        "local",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        *timeout,
    ]
