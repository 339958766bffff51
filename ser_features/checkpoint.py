"""Durable progress of an extraction: every finished batch is saved as soon as it is done.

A long run that is killed (``kill -9``, the OOM killer, a power cut) loses only the batches
that were in flight.  Each finished batch becomes one parquet file in ``OUT/.checkpoint/``
(written atomically, so a file there is always whole); the next run on the same folder
reuses every saved row whose path and content digest still match and whose feature set and
augmentation are the same.  The folder is removed once the final tables are written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ser_features.extraction import MANIFEST_COLUMNS, ClipOutcome
from ser_features.parquet_io import (
    TableWriteError,
    discard_partial_writes,
    read_checked,
    write_failure,
    write_parquet,
)

CHECKPOINT_DIR = ".checkpoint"
#: Parquet metadata keys of a checkpoint batch: what it was made with, and its refusals.
META_MADE_WITH = b"ser.checkpoint.made_with"
META_QUARANTINE = b"ser.checkpoint.quarantine"
META_FEATURE_NAMES = b"ser.checkpoint.feature_names"
VALUES_COLUMN = "__feature_values__"
QUARANTINE_COLUMNS = ("path", "digest", "reason")


@dataclass
class Resumed:
    """What earlier, interrupted runs left: feature rows, refusals, and notes for people."""

    features: pd.DataFrame
    quarantine: pd.DataFrame
    problems: list[str] = field(default_factory=list)


class BatchCheckpoint:
    """The saved batches of extractions into ``out_dir`` with one feature set and augmentation.

    Parameters
    ----------
    out_dir : the output folder; batches go to ``out_dir/.checkpoint/``.
    made_with : the feature set's tag (``name@vN``), plus ``+augmentation@vN`` for copies.

    Examples
    --------
    >>> checkpoint = BatchCheckpoint(Path("out"), "seed180@v1")
    >>> checkpoint.folder
    PosixPath('out/.checkpoint')
    """

    def __init__(self, out_dir: Path, made_with: str) -> None:
        self.out_dir = Path(out_dir)
        self.made_with = made_with

    @property
    def folder(self) -> Path:
        """Where the batches are saved."""
        return self.out_dir / CHECKPOINT_DIR

    def save(self, outcomes: list[ClipOutcome]) -> None:
        """Save one finished batch; raises :class:`TableWriteError` when it cannot be written."""
        if not outcomes:
            return
        key = hashlib.blake2b(digest_size=10)
        for outcome in outcomes:
            key.update(f"{outcome.path}\0{outcome.digest}\0".encode())
        path = self.folder / f"batch-{key.hexdigest()}.parquet"
        table, names = _batch_table(outcomes)
        metadata = {
            META_MADE_WITH: self.made_with.encode(),
            META_FEATURE_NAMES: json.dumps(names).encode(),
            META_QUARANTINE: json.dumps(
                [[o.path, o.digest, o.reason] for o in outcomes if not o.ok]
            ).encode(),
        }
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TableWriteError(write_failure(path, exc)) from exc
        try:
            write_parquet(table, path, metadata)
        except TableWriteError:
            with contextlib.suppress(OSError):  # leave no empty folder behind
                self.folder.rmdir()
            raise

    def load(self, wanted: set[tuple[str, str]]) -> Resumed:
        """Rows of saved batches whose ``(path, digest)`` is in ``wanted``, one per path.

        Batches made with another feature set or augmentation are discarded silently; an
        unreadable batch is discarded with a note (its clips are simply described again).
        """
        empty = Resumed(
            pd.DataFrame(columns=list(MANIFEST_COLUMNS)),
            pd.DataFrame(columns=list(QUARANTINE_COLUMNS)),
        )
        discard_partial_writes(self.folder)
        if not self.folder.is_dir():
            return empty
        frames, refused, problems = [], [], []
        for path in sorted(self.folder.glob("batch-*.parquet")):
            table, problem = read_checked(path, required=MANIFEST_COLUMNS)
            meta = (table.schema.metadata or {}) if table is not None else {}
            if table is None or not {META_QUARANTINE, META_FEATURE_NAMES} <= meta.keys():
                problems.append(
                    f"{path} is {problem or 'not a checkpoint batch'}; "
                    "discarding it (its clips are described again)"
                )
                path.unlink(missing_ok=True)
                continue
            if meta.get(META_MADE_WITH, b"").decode() != self.made_with:
                path.unlink(missing_ok=True)
                continue
            if table.num_rows:
                frames.append(_batch_frame(table, json.loads(meta[META_FEATURE_NAMES])))
            refused.extend(json.loads(meta[META_QUARANTINE]))
        features = pd.concat(frames, ignore_index=True) if frames else empty.features
        quarantine = (
            pd.DataFrame(refused, columns=list(QUARANTINE_COLUMNS)) if refused else empty.quarantine
        )
        return Resumed(_keep(features, wanted), _keep(quarantine, wanted), problems)

    def clear(self) -> None:
        """Remove every saved batch (after the final tables are written)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _batch_table(outcomes: list[ClipOutcome]) -> tuple[pa.Table, list[str]]:
    """The described clips of a batch: manifest columns plus one float64 row per clip.

    The features travel as a single fixed-size list column (names in the metadata): writing
    thousands of columns a batch would cost the main process ~0.5 s per batch of ComParE.
    """
    rows = [{**o.manifest, **o.features} for o in outcomes if o.ok and o.manifest and o.features]
    manifest = pd.DataFrame(
        [[row[column] for column in MANIFEST_COLUMNS] for row in rows],
        columns=list(MANIFEST_COLUMNS),
    )
    table = pa.Table.from_pandas(manifest, preserve_index=False)
    if not rows:
        return table, []
    # The same columns as the features table, where a feature may share a manifest name.
    names = [name for name in rows[0] if name not in MANIFEST_COLUMNS]
    values = np.array([[row[name] for name in names] for row in rows], np.float64)
    column = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), len(names))
    return table.append_column(VALUES_COLUMN, column), names


def _batch_frame(table: pa.Table, names: list[str]) -> pd.DataFrame:
    """A saved batch back as rows of the features table (manifest columns, then features)."""
    values = table.column(VALUES_COLUMN).combine_chunks().flatten().to_numpy()
    manifest = table.drop_columns([VALUES_COLUMN]).to_pandas()
    features = pd.DataFrame(values.reshape(table.num_rows, len(names)), columns=names)
    return pd.concat([manifest, features], axis=1)


def _keep(table: pd.DataFrame, wanted: set[tuple[str, str]]) -> pd.DataFrame:
    """Rows whose ``(path, digest)`` is wanted, the first row of each path."""
    pairs = zip(table["path"], table["digest"], strict=True)
    mask = [pair in wanted for pair in pairs]
    kept = table.loc[mask] if len(table) else table
    return kept.drop_duplicates("path").reset_index(drop=True)
