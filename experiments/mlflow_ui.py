"""Start the MLflow UI on the project's tracking store and wait until it answers.

``ui_command`` builds the ``mlflow ui`` command line (the ``mlflow`` beside ``sys.executable``),
``default_backend_store_uri`` picks the store, ``wait_until_serving`` polls a URL, and
``running_ui`` runs the UI in the background for tests and scripts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from experiments.local_server import free_port, stop, wait_until_serving

DEFAULT_DB = Path("mlruns") / "mlflow.db"
STORE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "file")
# The UI needs no background job runner (a huey consumer with two workers): leave it off.
UI_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def default_backend_store_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if a database or file store, else ``./mlruns/mlflow.db``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""
    if scheme in STORE_SCHEMES:
        return uri
    DEFAULT_DB.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_DB.resolve()}"


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


@contextmanager
def running_ui(
    backend_store_uri: str, *, cwd: str | Path | None = None, timeout: float = 120
) -> Iterator[str]:
    """Run the UI on a free port of 127.0.0.1 and yield its base URL; stop it afterwards.

    Its log goes to stderr. It runs in its own session, so stopping it stops uvicorn too.
    """
    port = free_port()
    process = subprocess.Popen(
        ui_command(backend_store_uri=backend_store_uri, port=port),
        cwd=cwd,
        env={**os.environ, **UI_ENV},
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base}/health", process=process, timeout=timeout)
        yield base
    finally:
        stop(process)
