"""Shared fixtures: the real corpora beside the checkout, and an isolated Prefect server."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="ser-tests-"))
# Set before Prefect, Keras or MLflow are imported anywhere in the test session.
os.environ.setdefault("PREFECT_HOME", str(_SESSION_HOME / "prefect"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("KERAS_HOME", str(_SESSION_HOME / "keras"))
os.environ.setdefault("MPLBACKEND", "Agg")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def librosa_kernels() -> None:
    """Load librosa's numba kernels under the cache lock before any test calls librosa."""
    from ser_features.numba_kernels import load_librosa_kernels

    load_librosa_kernels()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real RAVDESS, TESS and EmoDB audio); skips when absent."""
    if not (SHARED_DATA / "ravdess").is_dir():
        pytest.skip(f"real corpora not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def servers_die_with_the_session():
    """Whatever the tests start (the Prefect server, H2O JVMs, scoring and MLflow servers)
    is stopped once this pytest process is gone, even after a SIGKILL or a segfault."""
    from experiments.engines.process_guard import kill_with_this_process

    watchdog = kill_with_this_process()
    yield watchdog


@pytest.fixture(scope="session")
def prefect_server(servers_die_with_the_session):
    """One temporary Prefect API server shared by every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
