"""What the person at the terminal sees: one console for the ``ser`` commands, and a switch
that sends everything the libraries print to a log file instead.

MLflow's artifact bars, Prefect's INFO lines, H2O's JVM and client messages and Keras's
epochs are useful when something goes wrong and noise when it does not. Inside
:func:`library_output_to_log` the process's own stdout and stderr (file descriptors 1 and 2,
so also what C code and child processes such as the H2O JVM or Prefect's temporary server
write) go to the log file, while :data:`console` keeps writing to the terminal.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

#: The one console the ``ser`` commands and flows print to; progress displays use it too.
console = Console()

#: Settings that keep the libraries from drawing progress bars into the log.
QUIET_LIBRARY_ENV = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


def log_file_path(command: str, folder: Path) -> Path:
    """``folder/ser-COMMAND-YYYYmmdd-HHMMSS.log``."""
    return folder / f"ser-{command}-{time.strftime('%Y%m%d-%H%M%S')}.log"


@contextlib.contextmanager
def library_output_to_log(log_path: Path) -> Iterator[Path]:
    """Send stdout, stderr and Python logging to ``log_path``; :data:`console` stays on screen.

    Restores everything on exit, also when the body raises; the exception itself is then
    printed by the caller as usual.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1, encoding="utf-8")
    previous_file = console.file
    console.file = terminal
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    with open(log_path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        root.addHandler(handler)
        try:
            yield log_path
        finally:
            root.removeHandler(handler)
            handler.close()
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            console.file = previous_file
            terminal.close()
            # What libraries print from their own exit handlers (H2O's "Closing connection")
            # runs after this; handlers registered later run first, so this one goes first.
            atexit.register(_redirect_output, log_path)


def _redirect_output(log_path: Path) -> None:
    """Point file descriptors 1 and 2 at ``log_path`` (for output printed at exit)."""
    sys.stdout.flush()
    sys.stderr.flush()
    with open(log_path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
