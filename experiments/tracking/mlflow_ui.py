"""Start the MLflow UI on the project's tracking store and wait until it answers.

``ui_command`` builds the ``mlflow ui`` command line (the ``mlflow`` beside ``sys.executable``),
and ``default_backend_store_uri`` picks the store.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from experiments.tracking.runs import default_store_uri

STORE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "file")
# The UI needs no background job runner (a huey consumer with two workers): leave it off.
UI_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def default_backend_store_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if a database or file store, else ``./mlruns/mlflow.db``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""
    if scheme in STORE_SCHEMES:
        return uri
    return default_store_uri()


def ui_command(
    *,
    backend_store_uri: str,
    host: str = "127.0.0.1",
    port: int = 5000,
    artifacts_destination: str | None = None,
    workers: int = 1,
) -> list[str]:
    """The ``mlflow ui`` command line serving ``backend_store_uri`` on ``host:port``."""
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    command = [mlflow, "ui", "--backend-store-uri", backend_store_uri, "--host", host]
    command += ["--port", str(port), "--workers", str(workers)]
    if artifacts_destination:
        command += ["--artifacts-destination", artifacts_destination]
    return command
