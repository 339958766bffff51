"""The served model under load and bad input: statuses, messages, latency, memory.

Run by hand (not in CI), from the repository root::

    .venv/bin/python benchmarks/serve_load.py [--requests 1000] [--clients 8]
    .venv/bin/python benchmarks/serve_load.py --model ser-emotion   # reuse a registry champion

Without ``--model`` it trains a small ``sklearn_linear`` on the SYNTHETIC demo corpus into a
scratch MLflow store (as ``serve_latency.py`` does) and makes it ``@champion``; with it, the
champion of that registered model in ``MLFLOW_TRACKING_URI`` is served.  The server is
started exactly as ``ser serve`` starts it.  Requests mix real RAVDESS clips (actors 17-20,
held out by the RAVDESS config and never heard by the demo model) with every kind of bad
request.  Prints, per kind, the count of each HTTP status and of answers whose message
names the problem; p50/p95/p99 latency; requests/s; dropped connections; and the resident
memory of the server and its children before and after.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import requests
import soundfile as sf
from serve_latency import make_champion, train_demo_models

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess"
UNSEEN_ACTORS = ("Actor_17", "Actor_18", "Actor_19", "Actor_20")
JSON = "application/json"


@dataclass(frozen=True)
class Probe:
    """One kind of request: its body, content type, expected status and message words."""

    kind: str
    body: bytes
    content_type: str
    status: int
    names: str = ""


def frame(*rows: str, column: str = "audio") -> bytes:
    """A ``dataframe_split`` body with one column."""
    split = {"columns": [column], "data": [[row] for row in rows]}
    return json.dumps({"dataframe_split": split}).encode()


def wav(samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def real_clips(limit: int = 80) -> list[Path]:
    """RAVDESS clips of actors no model here trained on (held-out actors 17-20)."""
    clips = [p for actor in UNSEEN_ACTORS for p in sorted((SHARED / actor).glob("*.flac"))]
    if not clips:
        sys.exit(f"no RAVDESS clips under {SHARED}; this benchmark needs real speech")
    return random.Random(0).sample(clips, min(limit, len(clips)))


def probes(clips: list[Path], *, max_duration_s: float) -> tuple[list[Probe], list[Probe]]:
    """(good requests, one of each bad kind)."""
    good = [Probe("good", frame(b64(p.read_bytes())), JSON, 200) for p in clips]
    samples, rate = sf.read(clips[0], dtype="float32")
    real_wav = wav(samples, rate)
    clip = b64(clips[0].read_bytes())
    nan = np.full(16000, np.nan, dtype=np.float32)
    long = 0.1 * np.sin(np.arange(int((max_duration_s + 10) * 8000)) / 7)
    bad = [
        Probe("invalid base64", frame("not base64 at all!!"), JSON, 400, "not valid base64"),
        Probe("not audio", frame(b64(b"plain text, no sound " * 40)), JSON, 400, "not decodable"),
        Probe("empty string", frame(""), JSON, 400, "empty"),
        Probe("truncated WAV", frame(b64(real_wav[:2000])), JSON, 400, "truncated"),
        Probe("silent WAV", frame(b64(wav(np.zeros(16000), 16000))), JSON, 400, "silent"),
        Probe("NaN float WAV", frame(b64(wav(nan, 16000, "FLOAT"))), JSON, 400, "NaN"),
        Probe("no audio column", frame(clip, column="sound"), JSON, 400, "missing inputs"),
        Probe("not JSON", b"audio=" + clip[:200].encode(), JSON, 400, "not valid JSON"),
        Probe(
            "wrong shape",
            json.dumps({"columns": ["audio"], "data": [[clip]]}).encode(),
            JSON,
            400,
            "exactly one of the input fields",
        ),
        Probe("8 MB random", frame(b64(os.urandom(8 * 2**20))), JSON, 413, "the limit is"),
        Probe("file path", frame(str(clips[0])), JSON, 400, "file path"),
        Probe("content type", frame(clip), "text/plain", 415, "content types"),
        Probe("too long", frame(b64(wav(long, 8000, "PCM_U8"))), JSON, 400, "the limit is"),
    ]
    return good, bad


def server_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, MiB."""
    root = psutil.Process(pid)
    processes = [root, *root.children(recursive=True)]
    return sum(p.memory_info().rss for p in processes if p.is_running()) / 2**20


_local = threading.local()


def send(url: str, probe: Probe) -> tuple[Probe, int | None, float, str]:
    """(probe, status or None if the connection dropped, latency ms, message)."""
    session = getattr(_local, "session", None) or requests.Session()
    _local.session = session
    started = time.perf_counter()
    try:
        response = session.post(
            url, data=probe.body, headers={"Content-Type": probe.content_type}, timeout=120
        )
    except requests.RequestException as exc:
        _local.session = None
        return probe, None, (time.perf_counter() - started) * 1000, repr(exc)
    latency = (time.perf_counter() - started) * 1000
    message = ""
    if response.status_code != 200:
        try:
            message = str(response.json().get("message", ""))
        except ValueError:
            message = response.text
    return probe, response.status_code, latency, message


def report(
    results: list[tuple[Probe, int | None, float, str]], elapsed: float, kinds: list[str]
) -> None:
    """Print statuses and named messages per kind, latency, throughput, 5xx and drops."""
    statuses: dict[str, Counter] = {kind: Counter() for kind in kinds}
    named: Counter = Counter()
    by_kind: dict[str, list[float]] = defaultdict(list)
    for probe, status, latency, message in results:
        statuses[probe.kind][status] += 1
        by_kind[probe.kind].append(latency)
        if status == probe.status and (
            probe.status == 200 or (probe.names in message and "Failed to" not in message)
        ):
            named[probe.kind] += 1
    print(f"{'kind':16s} {'sent':>5s}  {'statuses':24s} {'as expected':>11s} {'p50 ms':>8s}")
    for kind, counts in statuses.items():
        ordered = sorted(counts.items(), key=str)
        shown = ", ".join(f"{status or 'dropped'}: {n}" for status, n in ordered)
        p50 = np.percentile(by_kind[kind], 50) if by_kind[kind] else float("nan")
        print(f"{kind:16s} {sum(counts.values()):5d}  {shown:24s} {named[kind]:11d} {p50:8.1f}")
    latencies = np.array([r[2] for r in results])
    good = np.array([r[2] for r in results if r[0].kind == "good"])
    for label, values in (("all", latencies), ("good", good)):
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        print(f"latency {label:4s}: p50 {p50:.1f} ms  p95 {p95:.1f} ms  p99 {p99:.1f} ms")
    server_errors = sum(1 for r in results if r[1] is not None and r[1] >= 500)
    dropped = sum(1 for r in results if r[1] is None)
    print(f"{len(results)} requests in {elapsed:.1f} s: {len(results) / elapsed:.1f} requests/s")
    print(f"5xx: {server_errors}  dropped connections: {dropped}")
    wrong = len(results) - sum(named.values())
    print(f"answers not as expected (status, or message not naming the problem): {wrong}")


def main() -> None:
    import flows

    flows.prefect_server_environment()  # before the first flow starts a Prefect server
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--model", help="serve this registered model's @champion instead")
    parser.add_argument("--features", default="spectral_prosodic", help="feature set trained")
    parser.add_argument("--max-request-mb", type=float, default=8.0)
    parser.add_argument("--timeout", type=int, default=60, help="seconds per request")
    args = parser.parse_args()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]), flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="ser-load-"))
    if args.model:
        from experiments.tracking.runs import configure_tracking

        uri, name = configure_tracking(), args.model
    else:
        uri, training = train_demo_models(
            workdir, ["sklearn_linear"], features=args.features, serving={"max_duration_s": 60}
        )
        (family,) = training.families
        name = "load-sklearn_linear"
        make_champion(family.model_uri, name)

    import mlflow

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from local_server import free_port, running

    from experiments.serving.command import serve_command, serving_environment

    info = mlflow.models.get_model_info(f"models:/{name}@champion")
    config = info.flavors["python_function"].get("model_config") or {}
    good, bad = probes(real_clips(), max_duration_s=float(config.get("max_duration_s", 600)))
    rng = random.Random(1)
    # half good, half bad, every bad kind equally often, in random order
    schedule = [
        good[i % len(good)] if i % 2 == 0 else bad[(i // 2) % len(bad)]
        for i in range(args.requests)
    ]
    rng.shuffle(schedule)
    port = free_port()
    url = f"http://127.0.0.1:{port}/invocations"
    with running(
        serve_command(name, port=port, timeout_s=args.timeout),
        env=serving_environment(uri, max_request_mb=args.max_request_mb),
        log_path=workdir / "server.log",
        ready_url=f"http://127.0.0.1:{port}/ping",
        timeout=240,
    ) as server:
        rss_started = server_rss_mb(server.pid)
        for probe in good[:5]:
            send(url, probe)
        rss_before = server_rss_mb(server.pid)
        started = time.perf_counter()
        results, rss_quarters = [], []
        with ThreadPoolExecutor(args.clients) as pool:
            for quarter in np.array_split(np.arange(len(schedule)), 4):
                chunk = [schedule[i] for i in quarter]
                results += pool.map(lambda probe: send(url, probe), chunk)
                rss_quarters.append(server_rss_mb(server.pid))
        elapsed = time.perf_counter() - started
        rss_after = rss_quarters[-1]
        alive = server.poll() is None and requests.get(url.replace("invocations", "ping")).ok
    print(f"served models:/{name}@champion ({args.clients} clients, {len(good)} real clips)")
    report(results, elapsed, [probe.kind for probe in [good[0], *bad]])
    quarters = ", ".join(f"{rss:.0f}" for rss in rss_quarters)
    print(
        f"server RSS incl. children: {rss_started:.0f} MiB at start, {rss_before:.0f} MiB after "
        f"warm-up, {rss_after:.0f} MiB after; growth {rss_after - rss_before:+.0f} MiB "
        f"(after each quarter of the requests: {quarters} MiB)"
    )
    print(f"server alive and answering /ping after the run: {alive}")


if __name__ == "__main__":
    main()
