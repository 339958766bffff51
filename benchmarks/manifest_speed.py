"""Own data through manifests: segments of a long recording, and ``ser data check``, timed.

Run by hand (not in CI)::

    .venv/bin/python benchmarks/manifest_speed.py [--data ../shared/data] [--clips 600]
        [--rounds 3] [--rows 10000] [--keep DIR]

Target 1: a one-hour 16 kHz WAV is built from real RAVDESS clips (0.7 s of silence between
them); describing ``--clips`` of its spans (read by seeking) with the default feature set
costs at most 1.5x describing the same spans saved as separate WAV files. Both are timed in
this process on one thread, alternately over ``--rounds`` rounds; medians and their ratio
are printed. Target 2: ``ser data check`` on a ``--rows`` CSV manifest (every RAVDESS and
CREMA-D file, topped up with segments of the recording) answers in under 10 s, CLI start-up
included. Scratch audio goes to a temporary folder (removed unless ``--keep``).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from threadpoolctl import threadpool_limits

from ser_features.corpora import ClipLabels, parse_path
from ser_features.data_check import check_sources
from ser_features.extraction import ClipJob, ClipOutcome, content_digest, extract_batch
from ser_features.feature_sets import DEFAULT_FEATURE_SET
from ser_features.numba_kernels import load_librosa_kernels

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SER = Path(sys.executable).with_name("ser")
RATE = 16000
GAP_S = 0.7
HOUR_S = 3600.0
SHIFT_S = 0.05  # start shift of each extra pass over the spans when the manifest needs more
Span = tuple[float, float, str]  # start s, end s, label of the source clip


def build_recording(clips: list[Path], out: Path) -> list[Span]:
    """Write ``clips`` (mono, PCM_16) with silence between them until one hour; their spans."""
    spans: list[Span] = []
    gap = np.zeros(round(GAP_S * RATE), dtype=np.int16)
    position = 0
    with sf.SoundFile(out, "w", RATE, 1, subtype="PCM_16", format="WAV") as handle:
        while position < HOUR_S * RATE:
            for clip in clips:
                data, rate = sf.read(clip, dtype="float64", always_2d=True)
                if rate != RATE:
                    raise SystemExit(f"{clip}: {rate} Hz, expected {RATE}")
                pcm = np.clip(np.round(data.mean(axis=1) * 32768), -32768, 32767)
                if position:
                    handle.write(gap)
                    position += len(gap)
                handle.write(pcm.astype(np.int16))
                labels = parse_path(clip)
                emotion = labels.emotion if labels else "neutral"
                spans.append((position / RATE, (position + len(pcm)) / RATE, emotion))
                position += len(pcm)
                if position >= HOUR_S * RATE:
                    break
    return spans


def cut_files(recording: Path, spans: list[Span], folder: Path) -> list[Path]:
    """Save each span's samples of ``recording`` as its own PCM_16 WAV file."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index, (start, end, _) in enumerate(spans):
        data, _ = sf.read(
            recording, start=round(start * RATE), stop=round(end * RATE), dtype="int16"
        )
        files.append(folder / f"span_{index:04d}.wav")
        sf.write(files[-1], data, RATE, subtype="PCM_16")
    return files


def timed(jobs: list[ClipJob]) -> tuple[float, list[ClipOutcome]]:
    """Seconds to describe ``jobs`` with the default feature set, and their outcomes."""
    started = time.perf_counter()
    outcomes = extract_batch(jobs, DEFAULT_FEATURE_SET)
    return time.perf_counter() - started, outcomes


def require_ok(name: str, outcomes: list[ClipOutcome]) -> None:
    """Exit non-zero, printing the reasons, when any clip was refused."""
    refused = [(o.path, o.reason) for o in outcomes if not o.ok]
    if refused:
        for path, reason in refused[:20]:
            print(f"  {name} refused {path}: {reason}")
        raise SystemExit(f"{len(refused)} {name} refused")


def target_one(recording: Path, spans: list[Span], files: list[Path], rounds: int) -> None:
    """Time segments against separate files, alternately, and check their features agree."""
    labels = ClipLabels(corpus="bench", speaker="bench_s1", gender=None, emotion="neutral")
    digest = content_digest(recording)
    seg_jobs = [ClipJob(str(recording), digest, labels, start=s, end=e) for s, e, _ in spans]
    file_jobs = [ClipJob(str(p), content_digest(p), labels) for p in files]
    times: dict[str, list[float]] = {"segments": [], "files": []}
    last: dict[str, list[ClipOutcome]] = {}
    with threadpool_limits(1):
        load_librosa_kernels()
        extract_batch(seg_jobs[:3] + file_jobs[:3], DEFAULT_FEATURE_SET)  # warm-up, untimed
        for round_ in range(rounds):
            order = ("segments", "files") if round_ % 2 == 0 else ("files", "segments")
            for name in order:
                seconds, last[name] = timed(seg_jobs if name == "segments" else file_jobs)
                require_ok(name, last[name])
                times[name].append(seconds)
                print(f"round {round_ + 1} {name:8s}: {seconds:7.2f} s for {len(spans)} clips")
    picks = sorted({round(i) for i in np.linspace(0, len(spans) - 1, min(8, len(spans)))})
    pairs = [(last["segments"][i].features, last["files"][i].features) for i in picks]
    agree = all(
        a.keys() == b.keys()
        and np.allclose(list(a.values()), list(b.values()), rtol=1e-4, atol=1e-5)
        for a, b in pairs
    )
    largest = max(
        float(np.max(np.abs(np.subtract(list(a.values()), list(b.values()))))) for a, b in pairs
    )
    print(
        f"features of segment i == file i for {len(picks)} clips {picks}: {agree} "
        f"(largest absolute difference {largest:.1e})"
    )
    if not agree:
        raise SystemExit("segment and file features differ")
    segments, separate = statistics.median(times["segments"]), statistics.median(times["files"])
    ratio = segments / separate
    print(f"median segments: {segments:.2f} s ({len(spans) / segments:.1f} clips/s)")
    print(f"median files:    {separate:.2f} s ({len(spans) / separate:.1f} clips/s)")
    verdict = "met" if ratio <= 1.5 else "NOT met"
    print(f"target 1 (segments <= 1.5x files): ratio {ratio:.2f} -> {verdict}")


def write_manifest(data: Path, recording: Path, spans: list[Span], rows: int, out: Path) -> int:
    """CSV of every RAVDESS and CREMA-D file, then segments of ``recording``, ``rows`` in all.

    Returns the number of whole-file rows. Extra passes over the spans shift their starts by
    ``SHIFT_S`` so that no row repeats another.
    """
    corpora = sorted((data / "ravdess").rglob("*.flac")) + sorted((data / "cremad").rglob("*.flac"))
    table: list[tuple[str, str, str, str, str]] = []
    for path in corpora:
        labels = parse_path(path)
        if labels is not None:
            table.append((str(path.resolve()), labels.emotion, labels.speaker, "", ""))
    table = table[:rows]
    whole = len(table)
    passes = 0
    while len(table) < rows:
        for start, end, emotion in spans[: rows - len(table)]:
            shifted = start + passes * SHIFT_S
            table.append((str(recording), emotion, "long_call", repr(shifted), repr(end)))
        passes += 1
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "speaker", "start", "end"])
        writer.writerows(table)
    print(f"manifest: {len(table)} rows ({whole} whole files, {len(table) - whole} segments)")
    return whole


def target_two(manifest: Path, rows: int) -> None:
    """Time ``check_sources`` in this process (cold), then the ``ser data check`` CLI."""
    started = time.perf_counter()
    report = check_sources([manifest])
    seconds = time.perf_counter() - started
    print(
        f"check_sources in-process: {len(report.clips)} clips, {len(report.refused)} refused, "
        f"{len(report.errors)} errors, {seconds:.2f} s"
    )
    for reason in (report.errors + [r for _, r in report.refused])[:5]:
        print(f"  {reason}")
    started = time.perf_counter()
    cli = subprocess.run(
        [str(SER), "data", "check", str(manifest), "--show", "0"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},  # one line per fact in the captured output
    )
    wall = time.perf_counter() - started
    print(f"ser data check (CLI, subprocess): exit {cli.returncode}, {wall:.2f} s wall")
    for line in cli.stdout.splitlines()[:2]:
        print(f"  | {line}")
    verdict = "met" if wall < 10 else "NOT met"
    print(f"target 2 (data check of {rows:,} rows < 10 s): {wall:.1f} s -> {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--clips", type=int, default=600, help="spans timed in target 1")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds per variant")
    parser.add_argument("--rows", type=int, default=10000, help="manifest rows in target 2")
    parser.add_argument("--keep", type=Path, help="keep the scratch files in this folder")
    args = parser.parse_args()
    ravdess = sorted((args.data / "ravdess").rglob("*.flac"))
    if not ravdess:
        raise SystemExit(f"no RAVDESS audio under {args.data}; pass --data FOLDER")

    with tempfile.TemporaryDirectory() as temporary:
        scratch = args.keep or Path(temporary)
        scratch.mkdir(parents=True, exist_ok=True)
        recording = scratch / "one_hour.wav"
        spans = build_recording(ravdess, recording)
        duration = sf.info(str(recording)).duration
        print(f"recording: {duration:.0f} s, {len(spans)} clips from {len(ravdess)} RAVDESS files")
        picks = np.linspace(0, len(spans) - 1, min(args.clips, len(spans))).round().astype(int)
        chosen = [spans[i] for i in picks]
        files = cut_files(recording, chosen, scratch / "spans")
        print(f"clips: {len(chosen)} spans ({sum(e - s for s, e, _ in chosen):.0f} s of audio)")
        target_one(recording, chosen, files, args.rounds)
        write_manifest(args.data, recording, spans, args.rows, scratch / "manifest.csv")
        target_two(scratch / "manifest.csv", args.rows)


if __name__ == "__main__":
    main()
