"""A test run or a `ser` process that dies (SIGKILL, segfault) leaves no servers behind.

Real processes throughout: a pytest session that brings up the suite's own servers (the
Prefect test server from ``conftest.py``, a local H2O JVM, an MLflow server in a session of
its own, as the scoring-server tests start theirs) and is then SIGKILLed; a plain Python
process with a local H2O JVM whose process group is SIGKILLed, as ``kill -9`` of `ser train`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from contextlib import suppress
from pathlib import Path

import pytest

from experiments.engines.h2o_cluster import java_available
from experiments.engines.process_guard import GRACE_S, INTERVAL_S, kill_with_this_process

TESTS = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
#: How long after the kill every server must be gone: the grace period and some slack.
GONE_WITHIN_S = GRACE_S + 5


def descendants(pid: int) -> set[int]:
    """Live descendants of ``pid`` (from /proc), at this moment."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        parent = pending.pop()
        with suppress(OSError):
            for task in Path(f"/proc/{parent}/task").iterdir():
                with suppress(OSError):
                    kids = {int(c) for c in (task / "children").read_text().split()}
                    pending.extend(kids - found)
                    found |= kids
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_gone(pids: set[int], ports: list[int], timeout: float) -> tuple[float, set[int]]:
    """Seconds until ``pids`` have exited and ``ports`` are closed, and the pids left."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        left = {p for p in pids if alive(p)}
        if not left and not any(port_open(p) for p in ports):
            return time.monotonic() - started, set()
        time.sleep(0.1)
    return time.monotonic() - started, {p for p in pids if alive(p)}


def kill_all(pids: set[int]) -> None:
    """Clean up after a failure: SIGKILL what is left, by pid."""
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_for_file(path: Path, process: subprocess.Popen, log: Path, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"child exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"child not ready within {timeout:.0f} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return json.loads(path.read_text())


def test_the_watchdog_stops_guarded_processes_and_their_children_when_the_parent_dies(tmp_path):
    """Explicit pids (a new-session process and what it started) and 'all descendants'."""
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json, subprocess, sys, time
            sys.path.insert(0, {str(TESTS.parent)!r})
            from experiments.engines.process_guard import kill_with_this_process
            guarded = subprocess.Popen(
                ["bash", "-c", "sleep 600 & wait"], start_new_session=True
            )
            kill_with_this_process([guarded.pid])
            other = subprocess.Popen(["sleep", "600"], start_new_session=True)
            if sys.argv[1] == "all":
                kill_with_this_process()
            time.sleep(3 * {INTERVAL_S})
            print(json.dumps([guarded.pid, other.pid]), flush=True)
            time.sleep(600)
            """
        )
    )
    for mode in ("pids", "all"):
        parent = subprocess.Popen(
            [sys.executable, str(script), mode], stdout=subprocess.PIPE, text=True
        )
        _guarded, other = json.loads(parent.stdout.readline())
        tree = descendants(parent.pid)
        assert len(tree) >= 4, tree  # the two processes, `sleep` below bash, the watchdog(s)
        parent.kill()
        parent.wait()
        try:
            expected = tree if mode == "all" else tree - {other}
            seconds, left = wait_gone(expected, [], timeout=GONE_WITHIN_S)
            assert not left, f"{mode}: still running after {seconds:.1f} s: {left}"
            assert mode == "all" or alive(other), "an unguarded process was left alone"
        finally:
            kill_all(tree)


def test_the_watchdog_exits_by_itself_when_its_process_ends(tmp_path):
    short = subprocess.Popen(["sleep", "0.3"])
    watchdog = kill_with_this_process([short.pid])
    assert watchdog is not None
    short.wait()
    try:
        assert watchdog.wait(timeout=5) == 0
    finally:
        kill_all({watchdog.pid})


CHILD_SESSION = """
import json, os, subprocess, sys, time
from pathlib import Path

import h2o

from experiments.engines.h2o_cluster import connect_h2o
from local_server import free_port, wait_until_serving


def test_hold_the_servers(prefect_server, tmp_path):
    import prefect.settings

    port = free_port()
    mlflow_server = subprocess.Popen(
        [{mlflow!r}, "server", "--backend-store-uri", f"sqlite:///{{tmp_path}}/mlflow.db",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    connect_h2o(max_mem_size="512M", nthreads=1, port=free_port(), ice_root=tmp_path / "ice")
    wait_until_serving(f"http://127.0.0.1:{{port}}/health", process=mlflow_server, timeout=180)
    api = prefect.settings.PREFECT_API_URL.value()
    ports = {{
        "prefect": int(api.split(":")[-1].split("/")[0]),
        "h2o": h2o.connection().local_server.port,
        "mlflow": port,
    }}
    Path({ready!r}).write_text(json.dumps(ports))
    time.sleep(600)
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_sigkilled_test_session_leaves_no_servers_running(tmp_path):
    """The Prefect test server, a local H2O JVM and an MLflow server (own session) all stop
    within seconds of the pytest process that started them being SIGKILLed."""
    if not java_available():
        pytest.skip("java not found: the session under test starts an H2O JVM")
    ready = tmp_path / "ready.json"
    test_file = tmp_path / "test_child_session.py"
    test_file.write_text(CHILD_SESSION.format(mlflow=str(BIN / "mlflow"), ready=str(ready)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(TESTS), str(TESTS.parent)]),
        PREFECT_HOME=str(tmp_path / "prefect"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    log = tmp_path / "child.log"
    with log.open("w") as sink:
        child = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider",
             "-q", "-s", str(test_file)],
            cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    tree: set[int] = set()
    try:
        ports = wait_for_file(ready, child, log, timeout=240)
        assert all(port_open(p) for p in ports.values()), ports
        tree = descendants(child.pid)
        names = {Path(f"/proc/{p}/comm").read_text().strip() for p in tree if alive(p)}
        assert "java" in names, names
        child.kill()  # as a segfault would: only pytest itself dies, nothing is cleaned up
        child.wait()
        seconds, left = wait_gone(tree, list(ports.values()), timeout=GONE_WITHIN_S)
        open_ports = {name: p for name, p in ports.items() if port_open(p)}
        assert not left and not open_ports, (
            f"after {seconds:.1f} s still running: {left}, listening: {open_ports}"
        )
    finally:
        if child.poll() is None:
            child.kill()
        kill_all(tree | descendants(child.pid))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_kill_minus_9_of_a_process_group_with_a_local_h2o_jvm_stops_the_jvm(tmp_path):
    """h2o starts its JVM in a session of its own: killing `ser train`'s group missed it."""
    if not java_available():
        pytest.skip("java not found")
    script = tmp_path / "trainer.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json, time
            import h2o
            from experiments.engines.h2o_cluster import connect_h2o
            from local_server import free_port
            connect_h2o(max_mem_size="512M", nthreads=1, port=free_port(),
                        ice_root={str(tmp_path / "ice")!r})
            server = h2o.connection().local_server
            print(json.dumps([server._process.pid, server.port]), flush=True)
            time.sleep(600)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    jvm = 0
    try:
        jvm, port = json.loads(process.stdout.readline())
        assert alive(jvm) and port_open(port)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        seconds, left = wait_gone({jvm}, [port], timeout=GONE_WITHIN_S)
        assert not left and not port_open(port), f"the JVM still runs after {seconds:.1f} s"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        kill_all({jvm} - {0})
