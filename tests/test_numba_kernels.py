"""librosa's numba cache stays loadable when several processes describe audio at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RACE_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "numba_cache_race.py"


@pytest.mark.slow
def test_staggered_processes_on_a_cold_cache_leave_a_cache_a_fresh_process_loads():
    """Three staggered describing processes on an empty cache, then ``librosa.yin`` afresh.

    Before the lock, about half of such trials left a kernel and its gufunc wrapper from
    different processes and the fresh process segfaulted. The script also fails when any
    feature set, augmentation or the pause splitter compiles a kernel outside the lock.
    """
    result = subprocess.run(
        [sys.executable, str(RACE_SCRIPT), "--trials", "1", "--workers", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "guarded: 0 of 1 trials failed" in result.stdout


def test_the_lock_sits_beside_the_cache_numba_writes(tmp_path):
    """With ``NUMBA_CACHE_DIR`` set, the lock lives in that folder."""
    code = (
        "from ser_features.numba_kernels import numba_cache_lock_path;"
        "print(numba_cache_lock_path())"
    )
    env = {"NUMBA_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert Path(out.stdout.strip()).parent == tmp_path
