"""The on-disk feature table: parquet files, their metadata, and reuse by content digest.

An output folder holds ``manifest.parquet`` (one row per described clip),
``features.parquet`` (the manifest columns plus the feature columns, with the feature set's
name and version in the parquet metadata), ``quarantine.parquet`` (files that could not be
used, with the reason) and ``skipped.parquet`` (files that are not labelled audio).

The four files are replaced together, only after all of them were written in full; an
earlier table that is unreadable is reported and rebuilt rather than trusted.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ser_features.checkpoint import BatchCheckpoint
from ser_features.extraction import MANIFEST_COLUMNS, ClipJob, ClipOutcome
from ser_features.feature_sets import FeatureSpec
from ser_features.parquet_io import (
    TableWriteError,
    read_checked,
    stage_parquet,
    write_failure,
    write_parquet,
)

FEATURES_FILE = "features.parquet"
MANIFEST_FILE = "manifest.parquet"
QUARANTINE_FILE = "quarantine.parquet"
SKIPPED_FILE = "skipped.parquet"
QUARANTINE_COLUMNS = ("path", "digest", "reason")
#: Parquet metadata keys naming the feature set that produced a table.
META_FEATURE_SET = b"ser.feature_set"
META_FEATURE_VERSION = b"ser.feature_set_version"
#: Parquet metadata key naming the augmentation (``name@vN``) of a table of augmented copies.
META_AUGMENTATION = b"ser.augmentation"
#: What else the numbers depend on (a pretrained encoder's revision and weights checksum).
META_FINGERPRINT = b"ser.feature_set_fingerprint"

__all__ = [
    "FEATURES_FILE",
    "MANIFEST_FILE",
    "QUARANTINE_FILE",
    "SKIPPED_FILE",
    "CachePlan",
    "TableWriteError",
    "assemble_tables",
    "feature_columns",
    "plan_from_cache",
    "read_feature_table",
    "table_augmentation",
    "table_metadata",
    "write_parquet",
    "write_tables",
]


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The feature columns of a features table (everything that is not manifest)."""
    return [column for column in table.columns if column not in MANIFEST_COLUMNS]


def read_feature_table(path: str | Path) -> tuple[pd.DataFrame, str | None, int | None]:
    """Read ``features.parquet``: the table, its feature set name and version."""
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    name = meta.get(META_FEATURE_SET)
    version = meta.get(META_FEATURE_VERSION)
    return (
        table.to_pandas(),
        name.decode() if name else None,
        int(version) if version else None,
    )


def table_augmentation(path: str | Path) -> str | None:
    """The augmentation tag a features table was made with (``None`` for original clips)."""
    value = (pq.read_schema(path).metadata or {}).get(META_AUGMENTATION)
    return value.decode() if value else None


def table_metadata(spec: FeatureSpec, augmentation: str | None = None) -> dict[bytes, bytes]:
    """Parquet metadata naming the feature set (and augmentation) a table was made with."""
    metadata = {
        META_FEATURE_SET: spec.name.encode(),
        META_FEATURE_VERSION: str(spec.version).encode(),
        b"ser.feature_set_description": spec.description.encode(),
    }
    if spec.fingerprint:
        metadata[META_FINGERPRINT] = spec.fingerprint.encode()
    if augmentation:
        metadata[META_AUGMENTATION] = augmentation.encode()
    return metadata


@dataclass
class CachePlan:
    """Which clips need describing, and which earlier results still hold.

    ``resumed`` counts the reused rows that came from the checkpoint of an interrupted run;
    ``problems`` has one line per damaged file found (each is rebuilt, never trusted).
    """

    to_extract: list[ClipJob]
    reused_features: pd.DataFrame
    reused_quarantine: pd.DataFrame
    dropped: int
    resumed: int = 0
    problems: list[str] = field(default_factory=list)


def plan_from_cache(
    jobs: list[ClipJob],
    out_dir: Path,
    spec: FeatureSpec,
    *,
    augmentation: str | None = None,
    checkpoint: BatchCheckpoint | None = None,
) -> CachePlan:
    """Reuse earlier rows whose path and digest are unchanged and whose spec version matches.

    Rows of files that vanished or changed are dropped; a different spec version or name, or
    a different augmentation tag, invalidates everything.  A damaged ``features.parquet``
    is reported in ``problems`` and every clip is described again; with ``checkpoint``, the
    batches an interrupted run saved are reused too.
    """
    wanted = {(job.key, job.clip_digest) for job in jobs}
    previous, old_quarantine, previous_rows, problems = _previous_tables(
        out_dir, spec, augmentation
    )
    features = previous.loc[_still_present(previous, wanted)]
    quarantine = old_quarantine.loc[_still_present(old_quarantine, wanted)]
    # Refusals made before any audio was read (no digest) are made again by every scan.
    rescanned = int((old_quarantine["digest"].astype(str) == "").sum())
    dropped = previous_rows - len(features) - len(quarantine) - rescanned
    resumed = 0
    if checkpoint is not None:
        saved = checkpoint.load(wanted)
        problems.extend(saved.problems)
        known = set(features["path"]) | set(quarantine["path"])
        new_rows = saved.features.loc[~saved.features["path"].isin(known)]
        known |= set(new_rows["path"])
        new_refusals = saved.quarantine.loc[~saved.quarantine["path"].isin(known)]
        resumed = len(new_rows) + len(new_refusals)
        features = _concat([features, new_rows], MANIFEST_COLUMNS)
        quarantine = _concat([quarantine, new_refusals], QUARANTINE_COLUMNS)
    features = _with_current_labels(features, jobs)
    done = set(zip(features["path"], features["digest"], strict=True)) | set(
        zip(quarantine["path"], quarantine["digest"], strict=True)
    )
    to_extract = [job for job in jobs if (job.key, job.clip_digest) not in done]
    return CachePlan(to_extract, features, quarantine, dropped, resumed, problems)


def _with_current_labels(features: pd.DataFrame, jobs: list[ClipJob]) -> pd.DataFrame:
    """Reused rows with the labels their file names (and corpus metadata) give today.

    Labels cost nothing to re-read, so a parser that learns more (a corpus's demographics
    table, say) updates the cached rows without describing the audio again.
    """
    if features.empty or not jobs:
        return features
    current = pd.DataFrame([{"path": job.key, **asdict(job.labels)} for job in jobs])
    current = current.drop_duplicates("path").set_index("path")
    columns = [c for c in current.columns if c in features.columns]
    known = features["path"].isin(current.index)
    if not columns or not known.any():
        return features
    refreshed = features.copy()
    fresh = current.loc[refreshed.loc[known, "path"], columns]
    for column in columns:
        refreshed[column] = refreshed[column].astype(object)
        refreshed.loc[known, column] = fresh[column].to_numpy()
    return refreshed


def _previous_tables(
    out_dir: Path, spec: FeatureSpec, augmentation: str | None
) -> tuple[pd.DataFrame, pd.DataFrame, int, list[str]]:
    """The reusable features and quarantine of ``out_dir``, their row count, and problems."""
    no_features = pd.DataFrame(columns=list(MANIFEST_COLUMNS))
    no_quarantine = pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    features_path = out_dir / FEATURES_FILE
    if not features_path.exists():
        return no_features, no_quarantine, 0, []
    table, problem = read_checked(features_path, required=_EARLIER_MANIFEST_COLUMNS)
    if table is not None:
        repeated = int(table.column("path").to_pandas().duplicated().sum())
        problem = f"{repeated} paths appear twice" if repeated else ""
    if table is None or problem:
        return (
            no_features,
            no_quarantine,
            0,
            [f"{features_path} is damaged ({problem}); rebuilding the tables from the audio"],
        )
    problems = []
    manifest_problem = _manifest_problem(out_dir / MANIFEST_FILE, table.select(["path", "digest"]))
    if manifest_problem:
        problems.append(
            f"{out_dir / MANIFEST_FILE} is {manifest_problem}; "
            f"rebuilding it from {FEATURES_FILE} (intact)"
        )
    meta = table.schema.metadata or {}
    made_with = (
        meta.get(META_FEATURE_SET),
        meta.get(META_FEATURE_VERSION),
        meta.get(META_FINGERPRINT, b""),
    )
    wanted = (spec.name.encode(), str(spec.version).encode(), spec.fingerprint.encode())
    same_augmentation = meta.get(META_AUGMENTATION, b"").decode() == (augmentation or "")
    if made_with != wanted or not same_augmentation:
        return no_features, no_quarantine, 0, problems
    features = _with_manifest_columns(table.to_pandas())
    quarantine_path = out_dir / QUARANTINE_FILE
    if not quarantine_path.exists():
        return features, no_quarantine, len(features), problems
    refused, problem = read_checked(quarantine_path, required=QUARANTINE_COLUMNS)
    if refused is None:
        problems.append(f"{quarantine_path} is damaged ({problem}); its files are checked again")
        return features, no_quarantine, len(features), problems
    quarantine = refused.to_pandas()
    return features, quarantine, len(features) + len(quarantine), problems


#: Manifest columns tables written before segments and sessions already had; the others
#: are added to such a table (whole files, labels re-read), so it is reused, not rebuilt.
_EARLIER_MANIFEST_COLUMNS = tuple(
    c for c in MANIFEST_COLUMNS if c not in ("session", "grouped_by", "start", "end")
)


def _with_manifest_columns(features: pd.DataFrame) -> pd.DataFrame:
    """``features`` with every manifest column, in order (missing ones empty), then features."""
    missing = [c for c in MANIFEST_COLUMNS if c not in features.columns]
    if not missing:
        return features
    features = features.assign(**dict.fromkeys(missing, None))
    return features[list(MANIFEST_COLUMNS) + feature_columns(features)]


def _manifest_problem(path: Path, keys) -> str:
    """Why ``manifest.parquet`` does not describe the features' ``keys``; "" when it does."""
    if not path.exists():
        return "missing"
    manifest, problem = read_checked(path, required=_EARLIER_MANIFEST_COLUMNS)
    if manifest is None:
        return f"damaged ({problem})"
    if not manifest.select(["path", "digest"]).equals(keys):
        return f"out of step with {FEATURES_FILE}"
    return ""


def _concat(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    """Concatenate the non-empty ``frames`` (an empty table with ``columns`` if none)."""
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return pd.DataFrame(columns=list(columns))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _still_present(table: pd.DataFrame, wanted: set[tuple[str, str]]) -> np.ndarray:
    """Boolean mask of rows whose (path, digest) is among ``wanted``."""
    pairs = zip(table["path"], table["digest"], strict=True)
    return np.fromiter((pair in wanted for pair in pairs), dtype=bool, count=len(table))


def assemble_tables(
    plan: CachePlan, outcomes: list[ClipOutcome]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge fresh outcomes with reused rows: (features table, quarantine table), path-sorted."""
    fresh = [
        {**outcome.manifest, **outcome.features}
        for outcome in outcomes
        if outcome.ok and outcome.manifest and outcome.features
    ]
    refused = [
        {"path": o.path, "digest": o.digest, "reason": o.reason} for o in outcomes if not o.ok
    ]
    frames = [frame for frame in (plan.reused_features, pd.DataFrame(fresh)) if len(frame)]
    features = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=list(MANIFEST_COLUMNS))
    )
    quarantine_frames = [f for f in (plan.reused_quarantine, pd.DataFrame(refused)) if len(f)]
    quarantine = (
        pd.concat(quarantine_frames, ignore_index=True)
        if quarantine_frames
        else pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    )
    features = features.sort_values("path", kind="stable").reset_index(drop=True)
    quarantine = quarantine.sort_values("path", kind="stable").reset_index(drop=True)
    return features, quarantine.astype({"path": str, "digest": str, "reason": str})


def write_tables(
    out_dir: Path,
    spec: FeatureSpec,
    features: pd.DataFrame,
    quarantine: pd.DataFrame,
    skipped: list[tuple[str, str]],
    *,
    augmentation: str | None = None,
) -> None:
    """Write the four parquet files of an output folder (``augmentation``: tag of the copies).

    All four are written to temporary files first and renamed into place only when every
    one is complete: a failure (e.g. a full disk) raises :class:`TableWriteError`, removes
    the temporary files and leaves the previous tables as they were.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TableWriteError(write_failure(out_dir / FEATURES_FILE, exc)) from exc
    metadata = table_metadata(spec, augmentation)
    planned = [
        (out_dir / FEATURES_FILE, features, metadata),
        (out_dir / MANIFEST_FILE, features[list(MANIFEST_COLUMNS)], metadata),
        (out_dir / QUARANTINE_FILE, quarantine, None),
        (out_dir / SKIPPED_FILE, pd.DataFrame(skipped, columns=["path", "reason"]), None),
    ]
    staged: list[tuple[Path, Path]] = []
    try:
        for path, frame, meta in planned:
            staged.append((stage_parquet(frame, path, meta), path))
    except TableWriteError:
        for partial, _ in staged:
            partial.unlink(missing_ok=True)
        raise
    for partial, path in staged:
        os.replace(partial, path)
