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
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

#: The one console the ``ser`` commands and flows print to; progress displays use it too.
console = Console()

#: Settings that keep the libraries from drawing progress bars into the log.
QUIET_LIBRARY_ENV = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


#: Loggers of the flows' own messages; their warnings stay on screen in quiet mode.
FLOW_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


def quiet_library_environment() -> None:
    """Set :data:`QUIET_LIBRARY_ENV` for this process, before the libraries are imported."""
    for name, value in QUIET_LIBRARY_ENV.items():
        os.environ.setdefault(name, value)


def fail(message: str) -> None:
    """Print ``error: message`` and end the command with exit code 2 (no traceback)."""
    import typer

    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


class _ConsoleWarnings(logging.Handler):
    """Shows the flows' warnings (a damaged table being rebuilt, say) on the console."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.WARNING:
            console.print(f"[yellow]warning:[/] {escape(record.getMessage())}", soft_wrap=True)


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
    previous_file = console.file
    # When stdout is already captured (a test's runner), the console keeps writing there.
    terminal = (
        os.fdopen(os.dup(saved_out), "w", buffering=1, encoding="utf-8")
        if _writes_to_fd(sys.stdout, 1)
        else None
    )
    console.file = terminal or sys.stdout
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    warnings_handler = _ConsoleWarnings()
    flow_loggers = [logging.getLogger(name) for name in FLOW_LOGGERS]
    with open(log_path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        root.addHandler(handler)
        for logger in flow_loggers:
            logger.addHandler(warnings_handler)
        try:
            yield log_path
        finally:
            root.removeHandler(handler)
            for logger in flow_loggers:
                logger.removeHandler(warnings_handler)
            handler.close()
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            console.file = previous_file
            if terminal is not None:
                terminal.close()
            # What libraries print from their own exit handlers (H2O's "Closing connection")
            # runs after this; handlers registered later run first, so this one goes first.
            atexit.register(_redirect_output, log_path)


@dataclass
class OutputMode:
    """How the running ``ser`` command shows library output (set by ``--verbose``)."""

    verbose: bool = False


#: The mode of this ``ser`` process.
output_mode = OutputMode()


@contextlib.contextmanager
def quiet_libraries(command: str) -> Iterator[Path | None]:
    """Around a long ``ser`` command: library output to a log file whose path is printed.

    With ``--verbose`` it does nothing and everything shows on the screen.
    """
    if output_mode.verbose:
        yield None
        return
    from experiments.tracking.runs import DEFAULT_STORE  # late: it brings MLflow in

    path = log_file_path(command, DEFAULT_STORE / "logs")
    console.print(f"[dim]library output goes to {path} (--verbose shows it here)[/]")
    with library_output_to_log(path):
        yield path


def _writes_to_fd(stream: object, fd: int) -> bool:
    try:
        return stream.fileno() == fd  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


def _redirect_output(log_path: Path) -> None:
    """Point file descriptors 1 and 2 at ``log_path`` (for output printed at exit)."""
    sys.stdout.flush()
    sys.stderr.flush()
    with open(log_path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
