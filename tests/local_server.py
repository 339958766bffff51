"""Test and benchmark helpers: local HTTP servers started as processes (scoring server,
MLflow UI), their ports, readiness and stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from experiments.tracking import mlflow_ui


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_until_serving(
    url: str, *, process: subprocess.Popen | None = None, timeout: float = 120
) -> None:
    """Poll ``url`` until it answers below HTTP 500.

    Raises ``RuntimeError`` (with the exit code) if ``process`` exits first, and
    ``TimeoutError`` if nothing answers within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"the server process exited with code {process.returncode} before {url} answered"
            )
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as error:
            if error.code < 500:
                return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.5)


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM (then SIGKILL) the group of a process started with ``start_new_session=True``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def running(
    command: list[str], *, env: dict[str, str], log_path: Path, ready_url: str, timeout: float = 180
) -> Iterator[subprocess.Popen]:
    """Start ``command`` in its own session, wait until ``ready_url`` answers, stop it after.

    Output goes to ``log_path``; a server that dies or never answers raises ``RuntimeError``
    with the end of its log.
    """
    with Path(log_path).open("w") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            try:
                wait_until_serving(ready_url, process=process, timeout=timeout)
            except (RuntimeError, TimeoutError) as exc:
                tail = Path(log_path).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{exc}\n{tail}") from None
            yield process
        finally:
            stop(process)


@contextmanager
def running_ui(
    backend_store_uri: str, *, cwd: str | Path | None = None, timeout: float = 120
) -> Iterator[str]:
    """Run the UI on a free port of 127.0.0.1 and yield its base URL; stop it afterwards.

    Its log goes to stderr. It runs in its own session, so stopping it stops uvicorn too.
    """
    port = free_port()
    process = subprocess.Popen(
        mlflow_ui.ui_command(backend_store_uri=backend_store_uri, port=port),
        cwd=cwd,
        env={**os.environ, **mlflow_ui.UI_ENV},
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base}/health", process=process, timeout=timeout)
        yield base
    finally:
        stop(process)
