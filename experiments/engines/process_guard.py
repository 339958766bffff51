"""Processes that must not outlive the process that started them (Linux).

A server started for a while (a test session's Prefect API, a local H2O JVM, a scoring
server) keeps running when its starter dies without cleaning up: ``kill -9``, a segfault, an
out-of-memory kill.  :func:`kill_with_this_process` starts a small watchdog that notices the
starter is gone (its parent pid changes), then terminates the given processes, or every
descendant of the starter, with SIGTERM and, after a grace period, SIGKILL.

The watchdog runs in its own session, so killing the starter's process group does not take
it along, and it exits by itself once there is nothing left to guard.  ``PR_SET_PDEATHSIG``
is not used: it fires when the *thread* that forked the child exits (Prefect runs tasks in
worker threads), does not reach grandchildren, and needs a ``preexec_fn`` in code that
libraries (Prefect, H2O) own.

Example
-------
>>> server = subprocess.Popen(["sleep", "600"], start_new_session=True)  # doctest: +SKIP
>>> kill_with_this_process([server.pid])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

#: Seconds between two looks at the process table.
INTERVAL_S = 0.25
#: Seconds between SIGTERM and SIGKILL.
GRACE_S = 3.0

_PROC = Path("/proc")


def kill_with_this_process(
    pids: Iterable[int] | None = None, *, grace: float = GRACE_S
) -> subprocess.Popen | None:
    """Make ``pids`` (and their descendants) die soon after this process, however it ends.

    With ``pids=None`` every descendant of this process is guarded: whatever it has started
    (tracked every :data:`INTERVAL_S` seconds) is stopped once it is gone.  Returns the
    watchdog process, or ``None`` where there is no ``/proc`` to watch.
    """
    if not _PROC.is_dir():
        return None
    command = [sys.executable, str(Path(__file__).resolve()), "--parent", str(os.getpid())]
    command += ["--grace", str(grace), *(str(pid) for pid in pids or ())]
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _start_time(pid: int) -> int | None:
    """The kernel start time of ``pid`` (tells a process from a later one with its pid)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[19])


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    with suppress(OSError):
        for task in (_PROC / str(pid) / "task").iterdir():
            with suppress(OSError):
                found.update(int(c) for c in (task / "children").read_text().split())
    return found


def _tree(roots: Iterable[int]) -> dict[int, int]:
    """``{pid: start time}`` of the live ``roots`` and all their descendants."""
    seen: dict[int, int] = {}
    pending = list(roots)
    while pending:
        pid = pending.pop()
        started = _start_time(pid)
        if pid in seen or started is None:
            continue
        seen[pid] = started
        pending.extend(_children(pid))
    return seen


def _alive(tracked: dict[int, int]) -> dict[int, int]:
    return {pid: t for pid, t in tracked.items() if _start_time(pid) == t}


def _stop(tracked: dict[int, int], grace: float) -> None:
    """SIGTERM everything in ``tracked`` (and what it started since), then SIGKILL."""
    tracked = {**tracked, **_tree(_alive(tracked))}
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        for pid in _alive(tracked):
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while _alive(tracked) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _alive(tracked):
            return


def watch(parent: int, pids: list[int], *, grace: float = GRACE_S) -> None:
    """The watchdog loop: track, wait for ``parent`` to go, then stop what is tracked."""
    me = os.getpid()
    tracked: dict[int, int] = {}
    while True:
        tracked = {**_alive(tracked), **_tree(pids or _children(parent))}
        tracked.pop(me, None)
        if pids and not _alive({p: t for p, t in tracked.items() if p in pids}):
            return  # every guarded process ended on its own
        if os.getppid() != parent:
            break
        time.sleep(INTERVAL_S)
    _stop(tracked, grace)


def main(argv: list[str] | None = None) -> int:
    """``python process_guard.py --parent PID [--grace S] [PID ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--grace", type=float, default=GRACE_S)
    parser.add_argument("pids", type=int, nargs="*")
    args = parser.parse_args(argv)
    watch(args.parent, args.pids, grace=args.grace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
