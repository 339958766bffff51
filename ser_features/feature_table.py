"""The on-disk feature table: parquet files, their metadata, and reuse by content digest.

An output folder holds ``manifest.parquet`` (one row per described clip),
``features.parquet`` (the manifest columns plus the feature columns, with the feature set's
name and version in the parquet metadata), ``quarantine.parquet`` (files that could not be
used, with the reason) and ``skipped.parquet`` (files that are not labelled audio).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ser_features.extraction import MANIFEST_COLUMNS, ClipJob, ClipOutcome
from ser_features.feature_sets import FeatureSpec

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


def write_parquet(frame: pd.DataFrame, path: Path, metadata: dict[bytes, bytes] | None = None):
    """Write ``frame`` atomically (temporary file, then rename), adding ``metadata``."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    partial = path.with_name(f".{path.name}.partial")
    pq.write_table(table, partial)
    os.replace(partial, path)


@dataclass
class CachePlan:
    """Which clips need describing, and which earlier results still hold."""

    to_extract: list[ClipJob]
    reused_features: pd.DataFrame
    reused_quarantine: pd.DataFrame
    dropped: int


def plan_from_cache(
    jobs: list[ClipJob], out_dir: Path, spec: FeatureSpec, *, augmentation: str | None = None
) -> CachePlan:
    """Reuse earlier rows whose path and digest are unchanged and whose spec version matches.

    Rows of files that vanished or changed are dropped; a different spec version or name, or
    a different augmentation tag, invalidates everything.
    """
    wanted = {(job.path, job.digest) for job in jobs}
    empty = pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    features, quarantine = pd.DataFrame(columns=list(MANIFEST_COLUMNS)), empty
    features_path = out_dir / FEATURES_FILE
    previous = 0
    if features_path.exists():
        table, name, version = read_feature_table(features_path)
        same_augmentation = table_augmentation(features_path) == augmentation
        if (name, version) == (spec.name, spec.version) and same_augmentation:
            previous = len(table)
            features = table.loc[_still_present(table, wanted)]
            quarantine_path = out_dir / QUARANTINE_FILE
            if quarantine_path.exists():
                old = pd.read_parquet(quarantine_path)
                previous += len(old)
                quarantine = old.loc[_still_present(old, wanted)]
    done = set(zip(features["path"], features["digest"], strict=True)) | set(
        zip(quarantine["path"], quarantine["digest"], strict=True)
    )
    to_extract = [job for job in jobs if (job.path, job.digest) not in done]
    dropped = previous - len(features) - len(quarantine)
    return CachePlan(to_extract, features, quarantine, dropped)


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
    """Write the four parquet files of an output folder (``augmentation``: tag of the copies)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metadata = {
        META_FEATURE_SET: spec.name.encode(),
        META_FEATURE_VERSION: str(spec.version).encode(),
        b"ser.feature_set_description": spec.description.encode(),
    }
    if augmentation:
        metadata[META_AUGMENTATION] = augmentation.encode()
    write_parquet(features, out_dir / FEATURES_FILE, metadata)
    write_parquet(features[list(MANIFEST_COLUMNS)], out_dir / MANIFEST_FILE, metadata)
    write_parquet(quarantine, out_dir / QUARANTINE_FILE)
    write_parquet(pd.DataFrame(skipped, columns=["path", "reason"]), out_dir / SKIPPED_FILE)
