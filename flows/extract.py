"""The extraction flow: scan folders, reuse cached rows, describe new clips in parallel."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from prefect import flow, get_run_logger, task
from rich.console import Console
from rich.progress import Progress

from ser_features.augmentation import get_augmentation
from ser_features.corpora import scan_folders
from ser_features.extraction import ClipJob, ClipOutcome, content_digest, extract_batch
from ser_features.feature_sets import DEFAULT_FEATURE_SET, get_feature_spec
from ser_features.feature_table import assemble_tables, plan_from_cache, write_tables

BATCH_SIZE = 24


@dataclass(frozen=True)
class ExtractionSummary:
    """What one extraction run did (``dropped``: stale rows of deleted or changed files)."""

    out_dir: str
    feature_set: str
    rows: int
    extracted: int
    cached: int
    skipped: int
    quarantined: int
    dropped: int
    seconds: float

    def describe(self) -> str:
        """One line for people."""
        return (
            f"{self.rows} feature rows ({self.feature_set}) in {self.out_dir}: "
            f"extracted {self.extracted}, cached {self.cached}, skipped {self.skipped}, "
            f"quarantined {self.quarantined}, dropped {self.dropped} "
            f"[{self.seconds:.1f} s]"
        )


@task(name="scan-folders")
def scan_audio_folders(data_dirs: list[str]) -> tuple[list[ClipJob], list[ClipOutcome], list]:
    """Find labelled clips and hash their content; unreadable files are refused here."""
    scan = scan_folders([Path(d) for d in data_dirs])
    jobs: list[ClipJob] = []
    unreadable: list[ClipOutcome] = []
    for clip in scan.clips:
        path = str(clip.path.resolve())
        try:
            jobs.append(ClipJob(path, content_digest(path), clip.labels))
        except OSError as exc:
            unreadable.append(ClipOutcome(path, "", reason=f"cannot read the file: {exc}"))
    skipped = [(str(path), reason) for path, reason in scan.skipped]
    return jobs, unreadable, skipped


@task(name="describe-clips")
def describe_clips(jobs: list[ClipJob], feature_set: str) -> list[ClipOutcome]:
    """Describe one batch of clips on whatever worker the task runner chose (e.g. Dask)."""
    return extract_batch(jobs, feature_set)


@task(name="describe-clips-in-processes")
def describe_clips_in_processes(
    jobs: list[ClipJob], feature_set: str, workers: int
) -> list[ClipOutcome]:
    """Describe ``jobs`` in ``workers`` local processes.

    Progress shows as a bar on a terminal and as log lines as batches finish.
    """
    logger = get_run_logger()
    outcomes: list[ClipOutcome] = []
    if workers == 1 or len(jobs) <= BATCH_SIZE:  # starting processes would cost more
        return extract_batch(jobs, feature_set)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["ser_features.extraction"])
    with (
        ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_one_thread_per_worker
        ) as pool,
        Progress(disable=not sys.stderr.isatty(), console=Console(stderr=True)) as bar,
    ):
        task_id = bar.add_task(f"describing clips ({feature_set})", total=len(jobs))
        pending = [pool.submit(extract_batch, batch, feature_set) for batch in _batches(jobs)]
        for done in concurrent.futures.as_completed(pending):
            batch = done.result()
            outcomes.extend(batch)
            bar.advance(task_id, len(batch))
            logger.info("described %d/%d clips", len(outcomes), len(jobs))
    return outcomes


def _one_thread_per_worker() -> None:
    """Processes are the parallelism: keep BLAS/OpenMP pools from oversubscribing cores."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _batches(jobs: list[ClipJob], size: int = BATCH_SIZE) -> list[list[ClipJob]]:
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


@flow(name="extract-features")
def extract_features(
    data_dirs: list[str],
    out_dir: str,
    feature_set: str = DEFAULT_FEATURE_SET,
    workers: int = 2,
    on_task_runner: bool = False,
    augmentation: str | None = None,
) -> ExtractionSummary:
    """Scan ``data_dirs``, describe new or changed clips, and write the parquet tables.

    Clips are described in ``workers`` local processes, or, with ``on_task_runner``, as one
    task per batch on the flow's task runner (a Dask cluster through ``DaskTaskRunner``).
    With ``augmentation``, every clip is described after that seeded transformation (a
    training-side table of copies; see :mod:`ser_features.augmentation`).
    """
    logger = get_run_logger()
    started = time.perf_counter()
    spec = get_feature_spec(feature_set)
    tag = get_augmentation(augmentation).tag if augmentation else None
    out = Path(out_dir)
    jobs, unreadable, skipped = scan_audio_folders(data_dirs)
    if augmentation:
        jobs = [replace(job, augmentation=augmentation) for job in jobs]
    plan = plan_from_cache(jobs, out, spec, augmentation=tag)
    total = len(plan.to_extract)
    logger.info(
        "%d labelled clips, %d to describe with %s%s, %d skipped",
        len(jobs),
        total,
        spec.tag,
        f" after {tag}" if tag else "",
        len(skipped),
    )
    if on_task_runner:
        futures = [describe_clips.submit(batch, feature_set) for batch in _batches(plan.to_extract)]
        fresh = [outcome for future in futures for outcome in future.result()]
    else:
        fresh = describe_clips_in_processes(plan.to_extract, feature_set, workers)
    outcomes = [*unreadable, *fresh]
    features, quarantine = assemble_tables(plan, outcomes)
    write_tables(out, spec, features, quarantine, skipped, augmentation=tag)
    summary = ExtractionSummary(
        out_dir=str(out),
        feature_set=f"{spec.tag}+{tag}" if tag else spec.tag,
        rows=len(features),
        extracted=sum(outcome.ok for outcome in outcomes),
        cached=len(plan.reused_features),
        skipped=len(skipped),
        quarantined=len(quarantine),
        dropped=plan.dropped,
        seconds=time.perf_counter() - started,
    )
    logger.info(summary.describe())
    for _, row in quarantine.iterrows():
        logger.warning("quarantined %s: %s", row["path"], row["reason"])
    return summary
