"""`ser extract` survives faults: real `ser` processes, real signals, a real full disk.

The slow tests run the venv's ``ser extract`` as a subprocess in its own process group,
reporting to the session's Prefect server, on a small SYNTHETIC demo corpus.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ser_features.checkpoint import BatchCheckpoint
from ser_features.demo_corpus import generate_demo_corpus
from ser_features.extraction import MANIFEST_COLUMNS, ClipJob, content_digest, extract_batch
from ser_features.feature_table import QUARANTINE_COLUMNS

SER = Path(sys.executable).with_name("ser")
TABLES = ("features.parquet", "manifest.parquet", "quarantine.parquet", "skipped.parquet")
SUMMARY = re.compile(r"done: (\d+) feature rows .*extracted (\d+), cached (\d+)", re.S)


@pytest.fixture(scope="module")
def speakers(tmp_path_factory) -> list[Path]:
    """Eight synthetic speakers, 30 clips each (``Actor_01`` ... ``Actor_08``)."""
    root = tmp_path_factory.mktemp("demo")
    generate_demo_corpus(root, n_speakers=8)
    return sorted(root.glob("Actor_*"))


@pytest.fixture
def ser_env(tmp_path) -> dict[str, str]:
    """Environment of the ``ser`` subprocesses: own Prefect home, the session's server."""
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PREFECT_LOGGING_LEVEL": "INFO",  # the progress lines the tests watch for
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
    }
    return env


class Run:
    """A running ``ser extract`` in its own process group, its output collected as it comes.

    ``--verbose`` keeps the flow's log lines (``described N/M clips``) in that output.
    """

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [str(SER), "--verbose", "extract", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match:
        """Block until a line matches ``pattern`` (fails if the process ends first)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                seen += 1
                if match := regex.search(line):
                    return match
            if self.process.poll() is not None and seen == len(self.lines):
                self._reader.join(5)
                if seen == len(self.lines):
                    break
            time.sleep(0.01)
        pytest.fail(f"no line matching {pattern!r}; output:\n{self.output}")

    def signal_group(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)

    def finish(self, timeout: float = 120) -> int:
        self.process.wait(timeout)
        self._reader.join(10)
        return self.process.returncode


def extract(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    run = Run(args, env)
    return run.finish(), run.output


def summary(output: str) -> tuple[int, int, int]:
    """(rows, extracted, cached) from the ``done:`` line."""
    match = SUMMARY.search(output)
    assert match, output
    return int(match[1]), int(match[2]), int(match[3])


def assert_valid_tables(out: Path, clips: list[Path]) -> pd.DataFrame:
    """The four tables are readable and describe each of ``clips`` exactly once."""
    features = pd.read_parquet(out / "features.parquet")
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert sorted(features["path"]) == sorted(str(clip.resolve()) for clip in clips)
    assert not features["path"].duplicated().any()
    assert not features["digest"].duplicated().any()
    pd.testing.assert_frame_equal(manifest, features[list(MANIFEST_COLUMNS)])
    assert len(pd.read_parquet(out / "quarantine.parquet")) == 0
    pd.read_parquet(out / "skipped.parquet")
    assert pq.read_schema(out / "features.parquet").metadata[b"ser.feature_set"]
    assert not list(out.rglob("*.partial")), "temporary files left behind"
    assert not (out / ".checkpoint").exists(), "checkpoint kept after a finished run"
    return features


def clips_of(folders: list[Path]) -> list[Path]:
    return sorted(clip for folder in folders for clip in folder.glob("*.wav"))


def test_a_checkpointed_batch_reads_back_as_the_rows_it_saved(speakers, tmp_path):
    """What a resumed run reuses is exactly what the killed run had described."""
    from ser_features.corpora import scan_folders

    clips = scan_folders([speakers[0]]).clips[:5]
    jobs = [ClipJob(str(c.path), content_digest(c.path), c.labels) for c in clips]
    broken = tmp_path / "03-01-05-01-01-01-01.wav"
    broken.write_bytes(b"RIFF")
    jobs.append(ClipJob(str(broken), content_digest(broken), clips[0].labels))
    outcomes = extract_batch(
        jobs, "spectral_prosodic"
    )  # one feature is named like a manifest column
    checkpoint = BatchCheckpoint(tmp_path / "out", "spectral_prosodic@v1")
    checkpoint.save(outcomes[:3])
    checkpoint.save(outcomes[3:])
    wanted = {(job.path, job.digest) for job in jobs}

    resumed = checkpoint.load(wanted)
    fresh = pd.DataFrame([{**o.manifest, **o.features} for o in outcomes if o.ok])
    got = resumed.features.sort_values("path", ignore_index=True)
    pd.testing.assert_frame_equal(got, fresh.sort_values("path", ignore_index=True))
    assert resumed.quarantine[list(QUARANTINE_COLUMNS)].values.tolist() == [
        [str(broken), jobs[-1].digest, outcomes[-1].reason]
    ]
    assert resumed.problems == []
    # Another feature set's batches are not reused; a damaged batch is reported, not trusted.
    assert len(BatchCheckpoint(tmp_path / "out", "egemaps@v1").load(wanted).features) == 0
    checkpoint.save(outcomes[:3])
    batch = next(checkpoint.folder.glob("batch-*.parquet"))
    batch.write_bytes(batch.read_bytes()[:100])
    damaged = checkpoint.load(wanted)
    assert len(damaged.features) == 0 and "discarding it" in damaged.problems[0]
    checkpoint.clear()
    assert not checkpoint.folder.exists()


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_sigkill_mid_run_resumes_and_describes_every_clip_once(speakers, ser_env, tmp_path):
    out = tmp_path / "out"
    args = [*map(str, speakers), "--out", str(out), "--features", "spectral_prosodic"]
    run = Run([*args, "--workers", "2"], ser_env)
    run.wait_for(r"described (\d+)/240 clips")
    progress = run.wait_for(r"described (\d+)/240 clips")  # two batches or more are done
    run.signal_group(signal.SIGKILL)
    assert run.finish() == -signal.SIGKILL
    done_before_kill = int(progress[1])
    _wait_until_group_gone(run.process.pid)
    assert not (out / "features.parquet").exists()
    assert (out / ".extract.lock").exists()  # left behind by the killed run, yet no obstacle

    # The lock of the killed run is released by the kernel; the re-run resumes.
    code, output = extract(args, ser_env)
    assert code == 0, output
    rows, extracted, cached = summary(output)
    assert rows == 240 and extracted + cached == 240
    assert cached >= done_before_kill, f"the re-run redid finished batches:\n{output}"
    assert "from an interrupted run" in output
    assert_valid_tables(out, clips_of(speakers))


def _wait_until_group_gone(pgid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail(f"processes of group {pgid} outlived SIGKILL")


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_damaged_tables_are_reported_in_one_line_and_rebuilt(speakers, ser_env, tmp_path):
    out = tmp_path / "out"
    args = [*map(str, speakers[:2]), "--out", str(out), "--features", "seed180", "--workers", "1"]
    code, output = extract(args, ser_env)
    assert code == 0, output
    good = pd.read_parquet(out / "features.parquet")

    # A truncated features table is described again from the audio; a manifest of garbage
    # is rebuilt from the (intact) features table, whose rows are checked by content digest.
    for name, damage, expected_extracted in (
        ("features.parquet", "truncated", 60),
        ("manifest.parquet", "garbage", 0),
    ):
        table = out / name
        data = table.read_bytes()
        table.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(999))
        code, output = extract(args, ser_env)
        assert code == 0, output
        assert "Traceback" not in output
        notes = [line for line in output.splitlines() if f"{table} is damaged" in line]
        assert len(notes) == 1 and "rebuilding" in notes[0], output
        assert summary(output)[1] == expected_extracted
        features = assert_valid_tables(out, clips_of(speakers[:2]))
        pd.testing.assert_frame_equal(features, good)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_a_second_extraction_on_the_same_folder_refuses(speakers, ser_env, tmp_path):
    out = tmp_path / "out"
    args = [*map(str, speakers[:4]), "--out", str(out), "--features", "spectral_prosodic"]
    first = Run([*args, "--workers", "1"], ser_env)
    first.wait_for(r"labelled clips, 120 to describe")  # it holds the folder now
    first.signal_group(signal.SIGSTOP)  # keep it mid-run while the second one tries
    try:
        before = _snapshot(out)
        code, output = extract([*args, "--workers", "1"], ser_env)
        assert code == 2, output
        assert "Traceback" not in output
        error = [line for line in output.splitlines() if line.startswith("error:")]
        assert len(error) == 1 and f"another extraction is writing {out}" in error[0], output
        assert _snapshot(out) == before, "the refused run touched the folder"
    finally:
        first.signal_group(signal.SIGCONT)
    assert first.finish() == 0, first.output
    assert summary(first.output)[:2] == (120, 120)
    assert_valid_tables(out, clips_of(speakers[:4]))


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
    }


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs, unmounted afterwards; skips where mounting is not permitted."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except FileNotFoundError:
        pytest.skip("no mount command to make a small filesystem")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def _fill(disk: Path, leave: int = 0) -> Path:
    """Fill ``disk`` with one file until at most ``leave`` bytes are free."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for chunk in (1 << 16, 1 << 12):
            while shutil.disk_usage(disk).free > leave + chunk - 1:
                try:
                    handle.write(b"\0" * chunk)
                except OSError:
                    break
    return filler


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_a_full_disk_stops_with_a_message_and_the_previous_tables_intact(
    speakers, ser_env, small_disk
):
    out = small_disk / "out"
    first_args = [*map(str, speakers[:2]), "--out", str(out), "--features", "seed180"]
    code, output = extract([*first_args, "--workers", "1"], ser_env)
    assert code == 0, output
    previous = {name: (out / name).read_bytes() for name in TABLES}
    more = [*map(str, speakers[:4]), "--out", str(out), "--features", "seed180", "--workers", "1"]

    # Nothing free: the first batch of new clips cannot even be saved.  Then room for the
    # new batches but not for the final tables.
    for leave in (0, len(previous["features.parquet"]) * 3 // 2):
        filler = _fill(small_disk, leave)
        code, output = extract(more, ser_env)
        assert code == 2, output
        assert "Traceback" not in output
        error = [line for line in output.splitlines() if line.startswith("error:")]
        assert len(error) == 1, output
        assert re.search(
            rf"no space left on device writing {re.escape(str(out))}/\S+; "
            "the previous tables are intact",
            error[0],
        ), error[0]
        assert {name: (out / name).read_bytes() for name in TABLES} == previous
        for name in TABLES:
            pq.read_table(out / name)
        assert not list(out.rglob("*.partial")), "temporary files left behind"
        filler.unlink()

    # With the space back, the batches saved before the disk filled up are reused.
    code, output = extract(more, ser_env)
    assert code == 0, output
    rows, extracted, cached = summary(output)
    assert (rows, extracted + cached) == (120, 120)
    assert extracted < 60, "the batches described before the disk filled up were redone"
    assert_valid_tables(out, clips_of(speakers[:4]))
