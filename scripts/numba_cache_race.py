"""Reproduce librosa's numba-cache race: staggered processes on a cold cache, then ``yin``.

Each trial gives numba a new, empty cache folder (``NUMBA_CACHE_DIR``), starts ``--workers``
processes at staggered times that describe a synthetic clip with every feature set, every
augmentation and the pause splitter, then starts a fresh process that calls ``librosa.yin``
and ``librosa.util.localmax`` straight from the cache they left. A trial fails when any
process dies (exit code -11 or 139 is the segmentation fault) or when describing clips
wrote new cache entries after :func:`load_librosa_kernels` (a kernel compiled outside the
lock).

    python scripts/numba_cache_race.py --trials 6              # the project's guarded path
    python scripts/numba_cache_race.py --trials 6 --unguarded  # plain librosa calls, no lock

The second form is the behaviour before the lock: about half its trials segfaulted here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FRESH_PROCESS = """
import numpy as np, librosa
t = np.arange(16000) / 16000
f0 = librosa.yin(np.sin(2 * np.pi * 200 * t).astype(np.float32), fmin=60, fmax=500, sr=16000)
assert abs(float(np.median(f0)) - 200) < 2, f0
librosa.util.localmax(np.random.default_rng(0).standard_normal(100))
"""


def cache_entries(folder: Path) -> set[str]:
    """Every numba index and data file under ``folder``."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix in {".nbi", ".nbc"}}


def _synthetic_clip():
    import numpy as np

    from ser_features.audio import Clip

    rate = 16000
    t = np.arange(2 * rate) / rate
    voice = np.sin(2 * np.pi * (180 + 20 * np.sin(2 * np.pi * 3 * t)) * t)
    samples = (0.3 * voice * (t % 0.6 < 0.45)).astype(np.float32)
    return Clip(samples=samples, sample_rate=rate, original_sample_rate=rate, original_channels=1)


def work(unguarded: bool) -> None:
    """What one worker does: the librosa paths this project uses, guarded or not."""
    import numpy as np

    folder = Path(os.environ["NUMBA_CACHE_DIR"])
    if unguarded:
        import librosa

        y = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
        librosa.util.localmax(y)
        librosa.feature.zero_crossing_rate(y)
        librosa.effects.split(y)
        librosa.istft(librosa.stft(y))
        return
    from ser_features.augmentation import AUGMENTATIONS, augment_clip
    from ser_features.feature_sets import FEATURE_SETS
    from ser_features.numba_kernels import load_librosa_kernels
    from ser_features.segments import speech_segments

    load_librosa_kernels()
    before = cache_entries(folder)
    clip = _synthetic_clip()
    for augmentation in AUGMENTATIONS.values():
        augment_clip(clip, augmentation, digest="0" * 32)
    for spec in FEATURE_SETS.values():
        spec.describe(clip)
    speech_segments(clip.samples, clip.sample_rate)
    compiled_outside_lock = cache_entries(folder) - before
    if compiled_outside_lock:
        sys.exit(f"compiled outside the lock: {sorted(compiled_outside_lock)}")


def trial(*, workers: int, stagger_s: float, unguarded: bool) -> list[int]:
    """Exit codes of the staggered workers, then of the fresh ``yin`` process."""
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as folder:
        env = {**os.environ, "NUMBA_CACHE_DIR": folder}
        command = [sys.executable, __file__, "--work"] + (["--unguarded"] if unguarded else [])
        processes = []
        for _ in range(workers):
            processes.append(subprocess.Popen(command, env=env))
            time.sleep(stagger_s)
        codes = [process.wait() for process in processes]
        fresh = subprocess.run([sys.executable, "-c", FRESH_PROCESS], env=env, check=False)
        return [*codes, fresh.returncode]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--stagger-s", type=float, default=1.5)
    parser.add_argument("--unguarded", action="store_true", help="plain librosa, no lock")
    parser.add_argument("--work", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.work:
        work(args.unguarded)
        return
    failed = 0
    for number in range(1, args.trials + 1):
        codes = trial(workers=args.workers, stagger_s=args.stagger_s, unguarded=args.unguarded)
        ok = all(code == 0 for code in codes)
        failed += not ok
        print(f"trial {number}: exit codes {codes} -> {'ok' if ok else 'FAILED'}", flush=True)
    mode = "unguarded" if args.unguarded else "guarded"
    print(f"{mode}: {failed} of {args.trials} trials failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
