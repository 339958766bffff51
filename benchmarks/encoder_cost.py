"""What a pretrained encoder feature set costs here: float32 against int8, side by side.

Run by hand (not in CI), from the repository root, on an otherwise idle machine::

    .venv/bin/python benchmarks/encoder_cost.py [--encoder FOLDER_OR_ID] [--files 60]

Without ``--encoder`` it writes WavLM-base's architecture with random weights (timing does not
depend on the weights; accuracy is not measured: random weights carry no emotion). For each
variant (``float32`` with every layer run, the reference; the default middle layers 3-9 in
``float32`` and in ``int8``) it prints:

1. describing one 4.0 s clip of real speech, in this process on 2 threads: p50 ms and the
   ratio to the reference;
2. how far the int8 embeddings are from float32 ones (relative error, cosine) on the files;
3. extraction with the project's flow, 2 worker processes, on ``--files`` real RAVDESS clips
   into a fresh folder: clips/s, start-up of the workers (loading torch and the encoder)
   included; then the same on clips of 4.0 s of speech each (the first half of those clips'
   speech, joined and cut);
4. a model trained on each variant's features (``sklearn_linear`` on the synthetic demo
   corpus), all served at once by ``ser serve``, a 4.0 s recording of real speech (the clip
   ``serve_latency.py`` sends) sent to each in turns: p50/p95 ms, and each server's resident
   memory.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess"
VARIANTS = {
    "float32, all 12 layers (reference)": "?layers=12",
    "float32, layers 3-9": "",
    "int8, layers 3-9": "?runtime=int8",
}


def real_clips(count: int) -> list[Path]:
    """``count`` RAVDESS clips, actor by actor."""
    return sorted(SHARED.glob("Actor_*/*.flac"))[:count]


def speech_seconds(files: list[Path]) -> float:
    """Mean seconds of a clip as the encoder hears it (cut to its speech)."""
    from ser_features.audio import load_audio
    from ser_features.feature_sets.ssl import SSL_LOAD

    return float(np.mean([load_audio(p, options=SSL_LOAD).duration_s for p in files]))


def four_seconds() -> np.ndarray:
    """4.0 s of real speech at 16 kHz (clips of actor 01 joined)."""
    from ser_features.audio import LoadOptions, load_audio

    pieces = [load_audio(p, options=LoadOptions()).samples for p in real_clips(4)]
    return np.resize(np.concatenate(pieces), 4 * 16000)


def four_second_files(files: list[Path], folder: Path) -> list[Path]:
    """WAV files of 4.0 s of speech each, made by joining ``files`` (speech only) in turn."""
    import soundfile as sf

    from ser_features.audio import load_audio
    from ser_features.feature_sets.ssl import SSL_LOAD

    folder.mkdir(parents=True, exist_ok=True)
    speech = np.concatenate([load_audio(p, options=SSL_LOAD).samples for p in files])
    made = []
    for i in range(len(speech) // 64000):
        path = folder / f"03-01-01-01-01-01-{i:04d}.wav"  # label and speaker for the manifest
        sf.write(path, speech[i * 64000 : (i + 1) * 64000], 16000)
        made.append(path)
    return made


def describe_in_turns(names: dict[str, str], samples: np.ndarray, repeats: int = 15) -> dict:
    """p50 ms of describing ``samples`` (already loaded) with each feature set of ``names``,
    measured in turns (one call of each, then again) so a slow spell of the machine lands on
    every variant alike."""
    from ser_features.audio import Clip
    from ser_features.feature_sets import get_feature_spec

    specs = {label: get_feature_spec(name) for label, name in names.items()}
    clip = Clip(samples, 16000, 16000, 1)
    for spec in specs.values():
        spec.describe(clip)  # load and warm up
    times: dict[str, list[float]] = {label: [] for label in specs}
    for _ in range(repeats):
        for label, spec in specs.items():
            started = time.perf_counter()
            spec.describe(clip)
            times[label].append((time.perf_counter() - started) * 1000)
    return {label: float(np.median(values)) for label, values in times.items()}


def agreement(exact: str, fast: str, files: list[Path]) -> tuple[float, float]:
    """Median relative error and lowest cosine of ``fast``'s rows against ``exact``'s."""
    from ser_features.audio import load_audio
    from ser_features.feature_sets import get_feature_spec

    a, b = get_feature_spec(exact), get_feature_spec(fast)
    errors, cosines = [], []
    for path in files:
        clip = load_audio(path, options=a.load)
        x = np.fromiter(a.describe(clip).values(), float)
        y = np.fromiter(b.describe(clip).values(), float)
        errors.append(np.linalg.norm(x - y) / np.linalg.norm(x))
        cosines.append(x @ y / np.linalg.norm(x) / np.linalg.norm(y))
    return float(np.median(errors)), float(np.min(cosines))


def extraction_rate(name: str, files: list[Path], workdir: Path) -> float:
    """Clips/s of the extraction flow (2 processes) on ``files`` into a fresh folder."""
    from flows.extract import extract_features

    manifest = workdir / f"files-{time.monotonic_ns()}.csv"
    lines = ["path,label,speaker"] + [f"{p},{p.stem.split('-')[2]},{p.parent.name}" for p in files]
    manifest.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    summary = extract_features([str(manifest)], str(workdir / manifest.stem), name, workers=2)
    seconds = time.perf_counter() - started
    assert summary.extracted == len(files), summary
    return len(files) / seconds


def served_in_turns(names: dict[str, str], workdir: Path, requests: int) -> dict:
    """For each feature set of ``names``: a model trained on it, served by ``ser serve``
    (all at once), and a 4 s clip sent to each in turns: ``{label: (p50, p95, RSS MB)}``."""
    import base64
    import contextlib
    import io

    import psutil
    import soundfile as sf
    from local_server import free_port, running
    from serve_latency import body_of, make_champion, request, train_demo_models

    from experiments.serving.command import serve_command, serving_environment

    buffer = io.BytesIO()
    sf.write(buffer, four_seconds(), 16000, format="WAV")
    body = body_of([base64.b64encode(buffer.getvalue()).decode()])
    urls, processes, times = {}, {}, {}
    with contextlib.ExitStack() as stack:
        for i, (label, name) in enumerate(names.items()):
            root = workdir / f"serve-{i}"
            root.mkdir()
            uri, report = train_demo_models(root, ["sklearn_linear"], features=name)
            (family,) = report.families
            assert family.status == "FINISHED", family.error
            model_name = f"encoder-cost-{i}"
            make_champion(family.model_uri, model_name)
            port = free_port()
            processes[label] = stack.enter_context(
                running(
                    serve_command(model_name, port=port),
                    env=serving_environment(uri),
                    log_path=root / "server.log",
                    ready_url=f"http://127.0.0.1:{port}/ping",
                    timeout=300,
                )
            )
            urls[label] = f"http://127.0.0.1:{port}/invocations"
            times[label] = []
        for url in urls.values():
            for _ in range(3):
                request(url, body)  # warm up
        for _ in range(requests):
            for label, url in urls.items():
                times[label].append(request(url, body))
        results = {}
        for label, process in processes.items():
            tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(True)]
            rss = sum(p.memory_info().rss for p in tree) / 2**20
            p50, p95 = np.percentile(times[label], [50, 95])
            results[label] = (float(p50), float(p95), rss)
    return results


def main() -> None:
    import flows

    flows.prefect_server_environment()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", help="hub id or folder (default: random WavLM-base)")
    parser.add_argument("--files", type=int, default=240)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--skip-serving", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # local_server
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # serve_latency
    workdir = Path(tempfile.mkdtemp(prefix="ser-encoder-cost-"))
    encoder = args.encoder
    if encoder is None:
        from ser_features.encoders.random_init import write_random_encoder

        encoder = str(write_random_encoder(workdir / "wavlm-base", "wavlm", size="base"))
        print("encoder: WavLM-base architecture, RANDOM weights (cost only, no accuracy)")
    import torch

    torch.set_num_threads(2)
    files = real_clips(args.files)
    samples = four_seconds()
    names = {label: f"ssl:{encoder}{query}" for label, query in VARIANTS.items()}
    print(
        f"{os.cpu_count()} cores; {len(files)} RAVDESS clips ({speech_seconds(files):.2f} s of "
        "speech each on average); a 4.0 s clip for latency"
    )
    described = describe_in_turns(names, samples)
    reference = next(iter(described.values()))
    for label, ms in described.items():
        print(f"{label:36s} describe 4 s clip: {ms:6.1f} ms  ratio {ms / reference:4.2f}")
    error, cosine = agreement(names["float32, layers 3-9"], names["int8, layers 3-9"], files)
    print(f"int8 against float32 embeddings: median relative error {error:.4f}, ", end="")
    print(f"lowest cosine {cosine:.4f}")
    long_files = four_second_files(files[: len(files) // 2], workdir / "four-seconds")
    for label, name in names.items():
        rate = extraction_rate(name, files, workdir)
        long_rate = extraction_rate(name, long_files, workdir)
        print(
            f"{label:36s} extraction, 2 processes: {rate:5.2f} clips/s "
            f"({long_rate:5.2f} clips/s of 4.0 s speech, {len(long_files)} clips)"
        )
    if args.skip_serving:
        return
    for label, (p50, p95, rss) in served_in_turns(names, workdir, args.requests).items():
        print(
            f"{label:36s} served 4 s clip: p50 {p50:6.1f} ms, p95 {p95:6.1f} ms; "
            f"server RSS {rss:5.0f} MB"
        )


if __name__ == "__main__":
    main()
