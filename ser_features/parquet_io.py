"""Parquet files that are either whole or absent: staged writes, checked reads, clear errors.

A table is written to a hidden ``.NAME.partial`` beside its final path and renamed into
place only once it is complete, so a reader never sees half a file.  A write that fails
(a full disk, a read-only folder) removes its temporary file and raises
:class:`TableWriteError` with one sentence for people; the file it would have replaced is
untouched.  :func:`read_checked` turns an unreadable file into a reason instead of a
traceback, so the caller can rebuild it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PARTIAL_SUFFIX = ".partial"


class TableWriteError(OSError):
    """A table could not be written; the message says which and that nothing was replaced.

    Examples
    --------
    >>> raise TableWriteError("no space left on device writing out/features.parquet")
    Traceback (most recent call last):
    ...
    ser_features.parquet_io.TableWriteError: no space left on device writing out/features.parquet
    """


def partial_path(path: Path) -> Path:
    """The hidden temporary file a write of ``path`` goes through."""
    return path.with_name(f".{path.name}{PARTIAL_SUFFIX}")


def write_failure(path: Path, exc: OSError) -> str:
    """One sentence for a failed write of ``path``."""
    if exc.errno == errno.ENOSPC:
        what = "no space left on device"
    elif exc.errno == errno.EDQUOT:
        what = "disk quota exceeded"
    else:
        what = f"cannot write ({exc.strerror or exc})"
    return f"{what} writing {path}; the previous tables are intact"


def stage_parquet(
    frame: pd.DataFrame | pa.Table, path: Path, metadata: dict[bytes, bytes] | None = None
) -> Path:
    """Write ``frame`` (plus ``metadata``) to the temporary file of ``path`` and return it.

    Raises :class:`TableWriteError` after removing the temporary file when the write fails.
    """
    table = (
        frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    )
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    partial = partial_path(path)
    try:
        pq.write_table(table, partial)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise TableWriteError(write_failure(path, exc)) from exc
    return partial


def write_parquet(
    frame: pd.DataFrame | pa.Table, path: Path, metadata: dict[bytes, bytes] | None = None
) -> None:
    """Write ``frame`` atomically (temporary file, then rename), adding ``metadata``."""
    os.replace(stage_parquet(frame, path, metadata), path)


def discard_partial_writes(folder: Path) -> list[Path]:
    """Remove temporary files that an interrupted write left in ``folder``; return them."""
    if not folder.is_dir():
        return []
    leftovers = sorted(folder.glob(f".*{PARTIAL_SUFFIX}"))
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return leftovers


def read_checked(path: Path, required: tuple[str, ...] = ()) -> tuple[pa.Table | None, str]:
    """Read ``path``: ``(table, "")``, or ``(None, reason)`` when it is unreadable or incomplete.

    ``required`` names columns the table must have.
    """
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"unreadable: {detail}"
    missing = [column for column in required if column not in table.column_names]
    if missing:
        return None, f"missing the column(s) {', '.join(missing)}"
    return table, ""
