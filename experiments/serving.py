"""How the champion is served: the ``mlflow models serve`` command and the environment it needs."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from experiments.registry import CHAMPION


def model_uri(model_name: str, alias: str = CHAMPION) -> str:
    """``models:/NAME@alias``."""
    return f"models:/{model_name}@{alias}"


def serving_environment(tracking_uri: str) -> dict[str, str]:
    """The process environment for the scoring server: registry, Keras backend, Java, PATH.

    The virtualenv's ``bin`` goes first on PATH (the server starts ``uvicorn`` from there).
    """
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    env["MLFLOW_REGISTRY_URI"] = tracking_uri
    env.setdefault("KERAS_BACKEND", "torch")
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    java = shutil.which("java", path=env["PATH"])
    if "JAVA_HOME" not in env and java:
        env["JAVA_HOME"] = str(Path(java).resolve().parent.parent)
    return env


def serve_command(
    model_name: str, *, host: str = "127.0.0.1", port: int = 5000, workers: int = 1
) -> list[str]:
    """The ``mlflow models serve`` command line for ``models:/NAME@champion``."""
    mlflow_cli = Path(sys.executable).with_name("mlflow")
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
    ]
