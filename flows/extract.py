"""The extraction flow: scan folders, reuse cached rows, describe new clips in parallel.

It survives faults: one extraction at a time writes an output folder (a lock file there;
a second run refuses), every finished batch is checkpointed so a killed run resumes where
it stopped, a damaged table is reported and rebuilt, and a full disk ends the run with one
sentence and the previous tables intact.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from filelock import FileLock, Timeout
from prefect import flow, get_run_logger, task
from prefect.futures import as_completed
from prefect.states import Failed
from rich.progress import Progress

from flows.user_console import console
from ser_features.augmentation import get_augmentation
from ser_features.checkpoint import BatchCheckpoint
from ser_features.clip_source import clip_key
from ser_features.extraction import ClipJob, ClipOutcome, content_digest, extract_batch
from ser_features.feature_sets import DEFAULT_FEATURE_SET, get_feature_spec
from ser_features.feature_table import assemble_tables, plan_from_cache, write_tables
from ser_features.manifests import ManifestError
from ser_features.parquet_io import TableWriteError, discard_partial_writes
from ser_features.sources import find_clips

BATCH_SIZE = 24
LOCK_FILE = ".extract.lock"


class ExtractionBusyError(RuntimeError):
    """Another extraction is writing the output folder; this one changed nothing."""


@contextmanager
def output_lock(out: Path) -> Iterator[Path]:
    """Hold ``out``'s lock file for the block, or raise :class:`ExtractionBusyError` at once.

    The lock is an ``flock`` on ``out/.extract.lock``: the kernel releases it when the
    holder exits or is killed, so a crashed run never blocks the next one.
    """
    path = out / LOCK_FILE
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path, timeout=0)
        lock.acquire()
    except Timeout:
        raise ExtractionBusyError(
            f"another extraction is writing {out} (it holds {path}); this run changed "
            "nothing: wait for that one to finish, or extract into another folder"
        ) from None
    except OSError as exc:
        raise TableWriteError(
            f"cannot create the lock file {path} ({exc.strerror or exc}); nothing was written"
        ) from exc
    try:
        yield path
    finally:
        lock.release()


@dataclass(frozen=True)
class ExtractionSummary:
    """What one extraction run did.

    ``dropped``: stale rows of deleted or changed files; ``resumed``: cached rows that came
    from the checkpoint of an interrupted run.
    """

    out_dir: str
    feature_set: str
    rows: int
    extracted: int
    cached: int
    skipped: int
    quarantined: int
    dropped: int
    seconds: float
    resumed: int = 0

    def describe(self) -> str:
        """One line for people."""
        resumed = f" ({self.resumed} from an interrupted run)" if self.resumed else ""
        return (
            f"{self.rows} feature rows ({self.feature_set}) in {self.out_dir}: "
            f"extracted {self.extracted}, cached {self.cached}{resumed}, "
            f"skipped {self.skipped}, quarantined {self.quarantined}, dropped {self.dropped} "
            f"[{self.seconds:.1f} s]"
        )


@task(name="scan-sources")
def scan_audio_sources(sources: list[str]) -> tuple[list[ClipJob], list[ClipOutcome], list]:
    """Find labelled clips in folders and manifests and hash each file's content once.

    Unreadable files and refused manifest rows become quarantine outcomes here.
    """
    scan = find_clips([Path(source) for source in sources])
    jobs: list[ClipJob] = []
    unreadable = [ClipOutcome(where, "", reason=reason) for where, reason in scan.refused]
    digests: dict[str, str | OSError] = {}
    for clip in scan.clips:
        path = str(clip.path.resolve())
        if path not in digests:
            try:
                digests[path] = content_digest(path)
            except OSError as exc:
                digests[path] = exc
        digest = digests[path]
        if isinstance(digest, OSError):
            key = clip_key(path, clip.start, clip.end)
            unreadable.append(ClipOutcome(key, "", reason=f"cannot read the file: {digest}"))
            continue
        jobs.append(ClipJob(path, digest, clip.labels, start=clip.start, end=clip.end))
    skipped = [(str(path), reason) for path, reason in scan.skipped]
    return jobs, unreadable, skipped


@task(name="describe-clips")
def describe_clips(jobs: list[ClipJob], feature_set: str) -> list[ClipOutcome]:
    """Describe one batch of clips on whatever worker the task runner chose (e.g. Dask)."""
    return extract_batch(jobs, feature_set)


@dataclass
class DescribedClips:
    """The outcomes of the batches that finished, and the error that stopped the rest."""

    outcomes: list[ClipOutcome]
    write_error: TableWriteError | None = None


@task(name="describe-clips-in-processes")
def describe_clips_in_processes(
    jobs: list[ClipJob],
    feature_set: str,
    workers: int,
    checkpoint: BatchCheckpoint | None = None,
) -> DescribedClips:
    """Describe ``jobs`` in ``workers`` local processes, saving each batch to ``checkpoint``.

    See :func:`describe_in_batches`; the processes run one thread each.
    """
    return describe_in_batches(jobs, feature_set, _in_processes(workers), checkpoint)


def describe_in_batches(
    jobs: list[ClipJob],
    feature_set: str,
    run: BatchRunner,
    checkpoint: BatchCheckpoint | None = None,
) -> DescribedClips:
    """Describe ``jobs`` batch by batch where ``run`` sends them, saving each to ``checkpoint``.

    ``run`` yields every batch's outcomes as it finishes (:func:`_in_processes`,
    :func:`_on_task_runner`).  Each finished batch is checkpointed at once, so a killed run
    resumes after it.  Progress shows as a bar on a terminal and as log lines as batches
    finish.  A batch that cannot be saved (a full disk) stops the work; the error is
    returned rather than raised, so the run ends with its message instead of a traceback.
    """
    logger = get_run_logger()
    outcomes: list[ClipOutcome] = []
    finished = run(_batches(jobs), feature_set)
    try:
        with Progress(disable=not console.is_terminal, console=console, transient=True) as bar:
            task_id = bar.add_task(f"describing clips ({feature_set})", total=len(jobs))
            for batch in finished:
                if checkpoint is not None:
                    checkpoint.save(batch)
                outcomes.extend(batch)
                bar.advance(task_id, len(batch))
                logger.info("described %d/%d clips", len(outcomes), len(jobs))
    except TableWriteError as exc:
        return DescribedClips(outcomes, exc)
    finally:
        finished.close()  # stops the batches still pending
    return DescribedClips(outcomes)


#: Describes batches somewhere and yields each one's outcomes as it finishes.
BatchRunner = Callable[[list[list[ClipJob]], str], Generator[list[ClipOutcome], None, None]]


def _in_processes(workers: int) -> BatchRunner:
    """Batches in ``workers`` local processes (a forkserver, one thread each), or in this
    process when there is one worker or one batch: starting processes would cost more."""

    def run(
        batches: list[list[ClipJob]], feature_set: str
    ) -> Generator[list[ClipOutcome], None, None]:
        if workers == 1 or len(batches) <= 1:
            for batch in batches:
                yield extract_batch(batch, feature_set)
            return
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["ser_features.extraction"])
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_one_thread_per_worker
        )
        try:
            pending = [pool.submit(extract_batch, batch, feature_set) for batch in batches]
            for done in concurrent.futures.as_completed(pending):
                yield done.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    return run


def _on_task_runner(
    batches: list[list[ClipJob]], feature_set: str
) -> Generator[list[ClipOutcome], None, None]:
    """Batches as :func:`describe_clips` tasks on the flow's task runner (e.g. Dask).

    Batches still running when the caller stops end with the flow's task runner.
    """
    futures = [describe_clips.submit(batch, feature_set) for batch in batches]
    for done in as_completed(futures):
        yield done.result()


def _has_own_task_runner() -> bool:
    """Whether this flow run was given a task runner (e.g. Dask), not Prefect's default."""
    from prefect.context import FlowRunContext
    from prefect.task_runners import ThreadPoolTaskRunner

    context = FlowRunContext.get()
    runner = context.task_runner if context is not None else None
    return runner is not None and not isinstance(runner, ThreadPoolTaskRunner)


def _one_thread_per_worker() -> None:
    """Processes are the parallelism: keep BLAS/OpenMP pools from oversubscribing cores."""
    from threadpoolctl import threadpool_limits

    os.environ["OMP_NUM_THREADS"] = "1"  # read by torch when an encoder first imports it
    threadpool_limits(1)


def _batches(jobs: list[ClipJob], size: int = BATCH_SIZE) -> list[list[ClipJob]]:
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


@flow(name="extract-features")
def extract_features(
    data_dirs: list[str],
    out_dir: str,
    feature_set: str = DEFAULT_FEATURE_SET,
    workers: int = 2,
    on_task_runner: bool | None = None,
    augmentation: str | None = None,
) -> ExtractionSummary:
    """Find the clips of ``data_dirs`` (folders or manifests; see
    :func:`~ser_features.sources.find_clips`), describe new or changed clips, and write the
    parquet tables.

    Clips are described in ``workers`` local processes, or, with ``on_task_runner``, as one
    task per batch on the flow's task runner (a Dask cluster through ``DaskTaskRunner``).
    By default (``None``) that is decided by the flow's task runner: one given with
    ``extract_features.with_options(task_runner=...)`` is used, Prefect's default is not.
    With ``augmentation``, every clip is described after that seeded transformation (a
    training-side table of copies; see :mod:`ser_features.augmentation`).

    While another extraction writes ``out_dir`` this raises :class:`ExtractionBusyError`;
    when a table cannot be written (a full disk) it raises
    :class:`~ser_features.parquet_io.TableWriteError` and the previous tables stay as they
    were; a manifest that cannot be read raises
    :class:`~ser_features.manifests.ManifestError` before any audio is read.  Each way the
    flow run ends Failed with that one-line message, no traceback.
    """
    try:
        with output_lock(Path(out_dir)):
            return _extract(
                data_dirs, Path(out_dir), feature_set, workers, on_task_runner, augmentation
            )
    except (ExtractionBusyError, TableWriteError, ManifestError, FileNotFoundError) as exc:
        # A Failed state rather than a raise: Prefect logs its message, not a traceback,
        # and calling the flow still raises ``exc``.
        return Failed(message=str(exc), data=exc)


def _extract(
    data_dirs: list[str],
    out: Path,
    feature_set: str,
    workers: int,
    on_task_runner: bool | None,
    augmentation: str | None,
) -> ExtractionSummary:
    """The body of :func:`extract_features`, run while holding the folder's lock."""
    logger = get_run_logger()
    started = time.perf_counter()
    spec = get_feature_spec(feature_set)
    tag = get_augmentation(augmentation).tag if augmentation else None
    made_with = f"{spec.cache_key}+{tag}" if tag else spec.cache_key
    discard_partial_writes(out)  # temporary files of a killed run
    checkpoint = BatchCheckpoint(out, made_with)
    jobs, unreadable, skipped = scan_audio_sources(data_dirs)
    if augmentation:
        jobs = [replace(job, augmentation=augmentation) for job in jobs]
    plan = plan_from_cache(jobs, out, spec, augmentation=tag, checkpoint=checkpoint)
    for problem in plan.problems:
        logger.warning(problem)
    if plan.resumed:
        logger.info("resuming an interrupted run: %d clips were already described", plan.resumed)
    total = len(plan.to_extract)
    console.print(
        f"extracting: {len(jobs)} labelled clips, {total} to describe with {spec.tag}"
        + (f" after {tag}" if tag else "")
    )
    logger.info(
        "%d labelled clips, %d to describe with %s%s, %d skipped",
        len(jobs),
        total,
        spec.tag,
        f" after {tag}" if tag else "",
        len(skipped),
    )
    if on_task_runner is None:
        on_task_runner = _has_own_task_runner()
    if on_task_runner:
        described = describe_in_batches(plan.to_extract, feature_set, _on_task_runner, checkpoint)
    else:
        described = describe_clips_in_processes(plan.to_extract, feature_set, workers, checkpoint)
    if described.write_error is not None:
        raise described.write_error
    fresh = described.outcomes
    outcomes = [*unreadable, *fresh]
    features, quarantine = assemble_tables(plan, outcomes)
    write_tables(out, spec, features, quarantine, skipped, augmentation=tag)
    checkpoint.clear()
    summary = ExtractionSummary(
        out_dir=str(out),
        feature_set=f"{spec.tag}+{tag}" if tag else spec.tag,  # fingerprint: in the metadata
        rows=len(features),
        extracted=sum(outcome.ok for outcome in outcomes),
        cached=len(plan.reused_features),
        skipped=len(skipped),
        quarantined=len(quarantine),
        dropped=plan.dropped,
        seconds=time.perf_counter() - started,
        resumed=plan.resumed,
    )
    logger.info(summary.describe())
    for _, row in quarantine.iterrows():
        logger.warning("quarantined %s: %s", row["path"], row["reason"])
    return summary
