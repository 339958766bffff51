"""Cost of the production loop: the prediction log per answer, and ``ser monitor`` at scale.

Run by hand (not in CI), from the repository root::

    .venv/bin/python benchmarks/production_loop.py [--calls 80] [--rows 100000]
        [--switch FAMILY FAMILY]

It trains a ``sklearn_linear`` model on a 6-speaker SYNTHETIC demo corpus into a scratch MLflow
store (as ``serve_latency.py`` does) and makes it ``@champion``. Then:

1. The served pyfunc is loaded twice in this process, once logging every answer (as ``ser
   serve --prediction-log`` does) and once not, and ``predict`` on a 4 s clip is called on
   the two in turns; it prints both p50s and the difference (target: at most 2 ms).
2. A ``ser serve`` process (one worker, following ``@champion`` every second) answers a
   4 s clip without pause while ``@champion`` moves to a second version (``--switch``: from a
   model of one family to one of another, ``sklearn_linear`` to ``sklearn_mlp`` by default;
   ``fused h2o_automl`` moves from the champion recipe to an H2O MOJO, whose scorer starts a
   JVM inside the server during the switch): it prints the seconds
   until answers name the new version, the failed requests, and the server's resident memory
   before and at its peak during the switch (target: switch within 60 s, no failed request,
   peak at most twice the memory with one model).
3. The answers logged in 1 are repeated (with a little noise on their features) into a log of
   ``--rows`` answers, written as ``ser serve`` writes it (one file per flush of 250 rows), and
   ``ser monitor`` is timed on it: in-process (read the log, the champion's reference, the
   comparison, the HTML page) and as the command a user runs (target: under 30 s).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from serve_latency import clip_b64, make_champion, train_demo_models

MODEL = "production-loop"


def logging_cost(workdir: Path, calls: int) -> Path:
    """Part 1: p50 of ``predict`` with and without the log, in turns; returns the log folder."""
    import mlflow

    from experiments.serving.prediction_log import LOG_ENV

    log = workdir / "predictions"
    uri = f"models:/{MODEL}@champion"
    plain = mlflow.pyfunc.load_model(uri)
    os.environ[LOG_ENV] = str(log)
    logging = mlflow.pyfunc.load_model(uri)
    del os.environ[LOG_ENV]
    clip = base64.b64decode(clip_b64(workdir, 4.0))
    frame = pd.DataFrame({"audio": [base64.b64encode(clip).decode()]})
    for model in (plain, logging):  # warm-up
        model.predict(frame)
    times: dict[str, list[float]] = {"without the log": [], "with the log": []}
    for _ in range(calls):
        for name, model in (("without the log", plain), ("with the log", logging)):
            started = time.perf_counter()
            model.predict(frame)
            times[name].append(1000 * (time.perf_counter() - started))
    logging.unwrap_python_model()._log.flush()
    p50 = {name: statistics.median(values) for name, values in times.items()}
    for name, value in p50.items():
        print(f"predict p50 {name:16s}: {value:7.2f} ms ({calls} calls, a 4.00 s clip)")
    extra = p50["with the log"] - p50["without the log"]
    verdict = "met" if extra <= 2 else "NOT met"
    print(f"target (the log adds <= 2 ms p50): {extra:+.2f} ms -> {verdict}")
    return log


def switch_cost(workdir: Path, uri: str, second_model_uri: str) -> None:
    """Part 2: a following server under requests while the alias moves to a new version."""
    import threading
    import urllib.request

    from local_server import free_port, running
    from serve_load import server_rss_mb

    from experiments.serving.command import serve_command, serving_environment

    port = free_port()
    env = serving_environment(uri, follow=f"{MODEL}@champion", follow_interval_s=1)
    body = json.dumps({"dataframe_split": {"columns": ["audio"], "data": [[
        clip_b64(workdir, 4.0)]]}}).encode()  # fmt: skip
    answers: list[tuple[float, int, str | None]] = []
    memory: list[tuple[float, float]] = []
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            call = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations", body,
                {"Content-Type": "application/json"},
            )  # fmt: skip
            try:
                with urllib.request.urlopen(call, timeout=60) as response:
                    version = json.load(response)["predictions"][0]["model_version"]
                answers.append((time.monotonic(), response.status, version))
            except Exception:  # a failed request is what this measures
                answers.append((time.monotonic(), 0, None))

    with running(
        serve_command(MODEL, port=port), env=env, log_path=workdir / "switch-server.log",
        ready_url=f"http://127.0.0.1:{port}/ping",
    ) as server:  # fmt: skip
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        time.sleep(5)
        samples = []
        for _ in range(5):
            samples.append(server_rss_mb(server.pid))
            time.sleep(0.2)
        steady = max(samples)
        version = make_champion(second_model_uri, MODEL)
        moved = time.monotonic()
        while time.monotonic() - moved < 60:
            memory.append((time.monotonic(), server_rss_mb(server.pid)))
            if any(t > moved and v == version for t, _, v in answers):
                break
            time.sleep(0.2)
        time.sleep(3)
        stop.set()
        sender.join(timeout=60)
    switched = [t - moved for t, _, v in answers if t > moved and v == version]
    failed = sum(status != 200 for _, status, _ in answers)
    peak = max(rss for _, rss in memory)
    print(f"switch to v{version}: answers from it after {switched[0]:.1f} s" if switched
          else f"switch to v{version}: NOT within 60 s")  # fmt: skip
    print(f"requests during the run: {len(answers)}, failed: {failed}")
    print(f"server memory: {steady:.0f} MiB with one model, peak {peak:.0f} MiB while switching "
          f"(x{peak / steady:.2f})")  # fmt: skip
    met = bool(switched) and switched[0] <= 60 and failed == 0 and peak <= 2 * steady
    print(f"target (switch <= 60 s, 0 failed, peak <= 2x one model): {'met' if met else 'NOT met'}")


def big_log(source: Path, rows: int, out: Path) -> None:
    """``rows`` answers made from the logged ones, written as the server writes them."""
    from experiments.serving.prediction_log import PredictionLog, read_log

    seed = read_log(source)
    features = [c for c in seed.columns if c.endswith("_mean")]
    rng = np.random.default_rng(0)
    log = PredictionLog(out, max_mb=10_000)
    for first in range(0, rows, 250):
        chunk = seed.sample(min(250, rows - first), replace=True, random_state=first)
        noise = rng.normal(scale=0.01, size=(len(chunk), len(features)))
        chunk[features] = chunk[features].to_numpy() * (1 + noise)
        log.append(chunk.to_dict("records"))
        log.flush()


def monitor_cost(workdir: Path, log: Path, uri: str) -> None:
    """Part 2: ``ser monitor`` over the big log, in-process and as a command."""
    from experiments.monitoring.reference import champion_reference
    from experiments.monitoring.report_html import report_html
    from experiments.monitoring.window import logged_window, window_drift

    started = time.perf_counter()
    window = logged_window(log, MODEL)
    read = time.perf_counter() - started
    report = window_drift(window, champion_reference(MODEL))
    report_html(report, title="benchmark")
    total = time.perf_counter() - started
    print(f"monitor in-process: {len(window)} answers, read {read:.1f} s, total {total:.1f} s "
          f"(drift detected: {report.drift_detected})")  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    started = time.perf_counter()
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ser")), "monitor", "--model", MODEL,
         "--prediction-log", str(log), "--json", str(workdir / "monitor.json")],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    print(f"ser monitor (command, Prefect and MLflow included): exit {result.returncode}, "
          f"{wall:.1f} s wall")  # fmt: skip
    if result.returncode:
        print(result.stdout[-2000:], result.stderr[-2000:])
    verdict = "met" if wall < 30 else "NOT met"
    print(f"target (ser monitor over {len(window):,} answers < 30 s): {wall:.1f} s -> {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=80)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--switch", nargs=2, metavar="FAMILY", default=["sklearn_linear", "sklearn_mlp"],
        help="the family of the first champion, then of the version @champion moves to",
    )  # fmt: skip
    args = parser.parse_args()
    if args.switch[0] == args.switch[1]:
        parser.error("--switch needs two different families")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # local_server
    with tempfile.TemporaryDirectory(prefix="ser-production-loop-") as scratch:
        workdir = Path(scratch)
        families = sorted({"sklearn_linear", *args.switch})
        uri, report = train_demo_models(workdir, families, features="spectral_prosodic")
        models = {family.family: family.model_uri for family in report.families}
        make_champion(models["sklearn_linear"], MODEL)
        log = logging_cost(workdir, args.calls)
        make_champion(models[args.switch[0]], MODEL)
        print(f"switch: from {args.switch[0]} to {args.switch[1]}")
        switch_cost(workdir, uri, models[args.switch[1]])
        big = workdir / "big-log"
        big_log(log, args.rows, big)
        monitor_cost(workdir, big, uri)


if __name__ == "__main__":
    main()
