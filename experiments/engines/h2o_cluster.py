"""Connect to, or start, the H2O cluster that H2O AutoML trains on.

A remote cluster is used when a URL is given (or ``SER_H2O_URL`` is set); otherwise a local
JVM is started (or reused) on ``localhost``.  Calling :func:`connect_h2o` again reuses the
running connection, so trainers may call it freely.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import h2o
from h2o.exceptions import H2OConnectionError, H2OServerError

from experiments.engines import java
from experiments.engines.java import java_available
from experiments.engines.process_guard import kill_with_this_process

#: Environment variable naming an existing cluster, e.g. ``http://h2o.internal:54321``.
URL_ENV = "SER_H2O_URL"
#: Environment variable overriding the local base port (default 54321).
PORT_ENV = "SER_H2O_PORT"
DEFAULT_PORT = 54321

JAVA_HINT = (
    f"H2O needs a Java runtime (8-17). {java.JAVA_HINT} "
    f"Alternatively, point {URL_ENV} at a running H2O cluster."
)


class H2OUnavailableError(RuntimeError):
    """No H2O cluster could be reached or started (missing Java, failed JVM, bad URL)."""


def default_ice_root() -> Path:
    """Per-user scratch folder for the local JVM (spill files and logs)."""
    user = os.environ.get("USER") or (str(os.getuid()) if hasattr(os, "getuid") else "user")
    return Path(tempfile.gettempdir()) / f"ser_h2o_{user}"


def _current_url() -> str | None:
    """Base URL of the live connection, or ``None`` when not connected to a running cluster."""
    conn = h2o.connection()
    if conn is None or not conn.connected:
        return None
    cluster = h2o.cluster()
    if cluster is None or not cluster.is_running():
        return None
    return conn.base_url


def connect_h2o(
    *,
    url: str | None = None,
    max_mem_size: str = "4G",
    nthreads: int = -1,
    ice_root: Path | None = None,
    port: int | None = None,
) -> None:
    """Make sure this process talks to an H2O cluster (idempotent).

    Parameters
    ----------
    url : existing cluster to connect to; defaults to ``$SER_H2O_URL``.  When neither is set a
        local JVM is started on ``localhost`` (or an already running one reused).
    max_mem_size : JVM heap of a newly started local cluster (H2O's default is a quarter of RAM).
    nthreads : CPU threads of a newly started local cluster, ``-1`` for all cores.
    ice_root : scratch folder for a local cluster (created; logs go to ``ice_root/logs``);
        defaults to :func:`default_ice_root`.
    port : base port for a local cluster; defaults to ``$SER_H2O_PORT`` or 54321.  A cluster
        already listening there is reused, else the next free port is taken.

    Raises
    ------
    H2OUnavailableError : Java is missing, the JVM failed to start or the URL is unreachable.
    """
    url = url or os.environ.get(URL_ENV) or None
    current = _current_url()
    if current is not None and (url is None or current.rstrip("/") == url.rstrip("/")):
        return
    if url is not None:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                h2o.connect(url=url, verbose=False)
        except (H2OConnectionError, H2OServerError) as exc:
            raise H2OUnavailableError(f"Cannot connect to the H2O cluster at {url}: {exc}") from exc
        h2o.no_progress()
        return
    if not java_available():
        raise H2OUnavailableError(f"Java was not found. {JAVA_HINT}")
    ice = Path(ice_root) if ice_root is not None else default_ice_root()
    log_dir = ice / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    base_port = port if port is not None else int(os.environ.get(PORT_ENV, DEFAULT_PORT))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            h2o.init(
                port=base_port,
                nthreads=nthreads,
                max_mem_size=max_mem_size,
                ice_root=str(ice),
                log_dir=str(log_dir),
                bind_to_localhost=True,
                verbose=False,
            )
    except (H2OConnectionError, H2OServerError) as exc:
        raise H2OUnavailableError(
            f"Could not start a local H2O cluster (logs in {log_dir}): {exc}. {JAVA_HINT}"
        ) from exc
    h2o.no_progress()
    _jvm_dies_with_this_process()


def _jvm_dies_with_this_process() -> None:
    """A JVM that ``h2o.init`` started here (in a session of its own) must not outlive us.

    h2o stops it at a normal exit; after ``kill -9`` or a crash it would run on, holding its
    heap and port, so a watchdog stops it then.
    """
    server = h2o.connection().local_server
    process = getattr(server, "_process", None)  # h2o keeps the JVM's Popen there
    if process is not None:
        kill_with_this_process([process.pid])


def shutdown_h2o() -> None:
    """Stop the cluster this process started (a no-op when connected to someone else's)."""
    conn = h2o.connection()
    if conn is None or not conn.connected:
        return
    server = conn.local_server
    conn.close()
    if server is not None:
        server.shutdown()
