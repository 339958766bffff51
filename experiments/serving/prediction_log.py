"""The prediction log: every answer the server gives, as append-only parquet files.

``ser serve --prediction-log FOLDER`` (default ``mlruns/predictions``) sets :data:`LOG_ENV`;
each server worker then buffers its answers and writes them every few seconds as one parquet
file ``predictions-<UTC hour>-<pid>-<n>.parquet`` (written whole, then renamed into place, so
a file is never half-written; a killed worker loses at most its last few seconds). Files of
several workers and of restarts sit side by side; when the folder passes
:data:`MAX_MB_ENV` (default 512 MiB) the oldest files are removed. A folder of files rather
than a database: it needs no server, every worker writes without locks, and the monitor reads
a time window with pandas; the columns are the same whichever store holds them.

One row per answered or refused input row (:data:`SCHEMA_VERSION` in the file metadata):
``time`` (UTC), ``model_name``, ``model_version``, ``request_ms``, ``emotion``,
``confidence``, ``probabilities`` (JSON), ``refused`` and ``reason``, the input's
``duration_s``, ``rms_dbfs`` and ``clipped_share`` and the rest of its quality facts
(``speech_s``, ``snr_db``, ``sample_rate``, ``bandwidth_hz``, ``level_dbfs`` and ``warnings``,
comma-separated; all measured on the recording as received), and the mean over the row's
segments of the monitored feature columns (:func:`monitored_columns`, named as in the feature
table), never the audio itself.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

LOG_ENV = "SER_PREDICTION_LOG"
MAX_MB_ENV = "SER_PREDICTION_LOG_MAX_MB"
DEFAULT_MAX_MB = 512.0
SCHEMA_VERSION = "1"
FLUSH_SECONDS = 5.0
#: Feature columns logged per answer, at most (what the monitor compares).
MONITORED = 32
_SERIAL = itertools.count()


def monitored_columns(columns: list[str], *, limit: int = MONITORED) -> list[str]:
    """The feature columns logged for drift: the ``mean`` columns (all columns when a set has
    none), at most ``limit`` of them, evenly spread over the set."""
    chosen = [c for c in columns if "mean" in c.lower()] or list(columns)
    if len(chosen) <= limit:
        return chosen
    return [chosen[int(i)] for i in np.linspace(0, len(chosen) - 1, limit).round()]


#: The facts logged per row (NaN for a refused row).
LOGGED_FACTS = (
    "duration_s",
    "rms_dbfs",
    "clipped_share",
    "speech_s",
    "snr_db",
    "sample_rate",
    "bandwidth_hz",
    "level_dbfs",
    "warnings",
)


def quality_facts(
    samples: np.ndarray, sample_rate: int, quality: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Duration, RMS level (dBFS) and the share of samples at full scale of a recording, and
    its answered ``quality`` facts when given (``warnings`` joined by commas)."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    facts: dict[str, Any] = {
        "duration_s": len(samples) / sample_rate,
        "rms_dbfs": 20 * np.log10(max(rms, 1e-12)),
        "clipped_share": float(np.mean(np.abs(samples) >= 0.999)) if len(samples) else 0.0,
    }
    if quality is not None:
        facts.update({name: quality[name] for name in LOGGED_FACTS if name in quality})
        facts["snr_db"] = np.nan if quality["snr_db"] is None else quality["snr_db"]
        facts["level_dbfs"] = np.nan if quality["level_dbfs"] is None else quality["level_dbfs"]
        facts["warnings"] = ",".join(quality["warnings"])
    return facts


class PredictionLog:
    """Buffers answer rows and writes them to ``folder`` from a background thread."""

    def __init__(self, folder: str | Path, *, max_mb: float | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = (max_mb or float(os.environ.get(MAX_MB_ENV, DEFAULT_MAX_MB))) * 2**20
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ser-prediction-log", daemon=True)
        self._thread.start()
        atexit.register(self.flush)

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Add answer rows (cheap: they are written later, off the request's path)."""
        with self._lock:
            self._rows.extend(rows)

    def flush(self) -> Path | None:
        """Write the buffered rows as one file now; returns it (None when there were none)."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return None
        frame = pd.DataFrame(rows)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.replace_schema_metadata({b"ser.prediction_log_schema": SCHEMA_VERSION})
        hour = datetime.now(UTC).strftime("%Y%m%dT%H")
        path = self.folder / f"predictions-{hour}-{os.getpid()}-{next(_SERIAL):06d}.parquet"
        partial = path.with_suffix(".partial")
        pq.write_table(table, partial)
        os.replace(partial, path)
        self._rotate()
        return path

    def _rotate(self) -> None:
        """Remove the oldest files while the folder is over its size limit."""
        files = sorted(self.folder.glob("predictions-*.parquet"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        for oldest in files[:-1]:
            if total <= self.max_bytes:
                break
            total -= oldest.stat().st_size
            oldest.unlink(missing_ok=True)

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            try:
                self.flush()
            except OSError as exc:  # a full disk must not stop the answers
                print(f"prediction log: cannot write to {self.folder}: {exc}", flush=True)


def answer_rows(
    answers: list[dict[str, Any]],
    facts: list[dict[str, float] | None],
    features: list[dict[str, float] | None],
    *,
    model_name: str | None,
    request_ms: float,
) -> list[dict[str, Any]]:
    """Log rows of one request's answers (one per input row, refused rows included)."""
    now = pd.Timestamp.now(tz="UTC")
    rows = []
    for answer, fact, described in zip(answers, facts, features, strict=True):
        rows.append(
            {
                "time": now,
                "model_name": model_name,
                "model_version": answer.get("model_version"),
                "request_ms": request_ms,
                "emotion": answer.get("emotion"),
                "confidence": answer.get("confidence"),
                "probabilities": json.dumps(answer.get("probabilities") or {}),
                "refused": answer.get("error") is not None,
                "reason": answer.get("error"),
                **(fact or dict.fromkeys(LOGGED_FACTS, np.nan)),
                **(described or {}),
            }
        )
    return rows


def read_log(
    folder: str | Path, *, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """Every logged row in ``folder`` between ``since`` and ``until`` (UTC), oldest first."""
    files = sorted(Path(folder).glob("predictions-*.parquet"))
    if not files:
        return pd.DataFrame(columns=["time", "model_version", "emotion", "refused"])
    frame = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
    if since is not None:
        frame = frame[frame["time"] >= _utc(since)]
    if until is not None:
        frame = frame[frame["time"] < _utc(until)]
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def _utc(moment: datetime | str) -> pd.Timestamp:
    """``moment`` as a UTC timestamp (a naive one is taken as UTC)."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
