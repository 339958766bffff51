"""Extraction speed on real files: the seeds' recipe against ``seed180``, then the default set.

Run by hand (not in CI)::

    .venv/bin/python benchmarks/extract_speed.py [--data ../shared/data/ravdess] [--files 300]

Part 1 times, in one process on one core (BLAS limited to one thread) on the same files,
the published projects' code (three separate STFTs through librosa's MFCC, chroma and mel
calls) and the project's ``seed180`` (one STFT,
cached filter banks), both including decoding, and prints files/s and ``speedup: N.NN``.
Part 2 runs the extraction flow with the default feature set on the whole folder with 2
worker processes into a fresh folder and prints the wall time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import flows
from ser_features.audio import load_audio
from ser_features.feature_sets import DEFAULT_FEATURE_SET, get_feature_spec

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess"


def seed180(path: Path) -> np.ndarray:
    spec = get_feature_spec("seed180")
    return np.fromiter(spec.describe(load_audio(path, options=spec.load)).values(), float)


def files_per_second(function, files: list[Path]) -> tuple[float, list[np.ndarray]]:
    function(files[0])  # warm-up: librosa's first call compiles and caches
    started = time.perf_counter()
    results = [function(path) for path in files]
    return len(files) / (time.perf_counter() - started), results


def main() -> None:
    flows.prefect_server_environment()  # before the first flow starts a Prefect server
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--files", type=int, default=300, help="files for part 1")
    parser.add_argument("--skip-flow", action="store_true", help="only part 1")
    args = parser.parse_args()
    files = sorted(args.data.rglob("*.flac")) + sorted(args.data.rglob("*.wav"))
    if not files:
        raise SystemExit(f"no audio under {args.data}; pass --data FOLDER")
    sample = files[: args.files]

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from seed_recipe import published_recipe

    with threadpool_limits(1):  # one process on one core, for both recipes alike
        reference_rate, reference = files_per_second(published_recipe, sample)
        ours_rate, ours = files_per_second(seed180, sample)
    error = max(
        float(np.max(np.abs(a - b) / (np.abs(b) + 1e-6)))
        for a, b in zip(ours, reference, strict=True)
    )
    print(f"files: {len(sample)} from {args.data}")
    print(f"seeds' recipe (3 STFTs):   {reference_rate:7.1f} files/s")
    print(f"seed180 (shared STFT):     {ours_rate:7.1f} files/s  (max rel. difference {error:.1e})")

    if not args.skip_flow:
        from flows.extract import extract_features

        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            summary = extract_features([str(args.data)], out, DEFAULT_FEATURE_SET, workers=2)
            wall = time.perf_counter() - started
        print(
            f"{DEFAULT_FEATURE_SET} on {summary.rows} files, 2 processes: {wall:.1f} s wall "
            f"({summary.rows / wall:.1f} files/s, Prefect start-up included)"
        )
    print(f"speedup: {ours_rate / reference_rate:.2f}")


if __name__ == "__main__":
    main()
