"""Manifests: any labelled speech as a table, one row per clip.

A manifest is a ``.csv``, ``.tsv``, ``.jsonl`` or ``.parquet`` file with these columns
(the contract; :data:`COLUMNS`):

========== ======== =================================================================
column     needed   meaning
========== ======== =================================================================
path       yes      the audio file, relative to the manifest's folder or absolute
label      yes      the clip's label: any non-empty name (``anger``, ``frustrated``)
speaker    no       who speaks; speaker-independent splits keep a speaker on one side
gender     no       used to balance the held-out speakers (``m``/``f`` are understood)
session    no       a call, interview or session; groups the split when no speaker
start, end no       seconds into the file: the row is that segment of a longer recording
corpus     no       the corpus name (default: the manifest's file stem)
========== ======== =================================================================

Common spellings of other tools are read as these (:data:`ALIASES`: Hugging Face
AudioFolder's ``file_name``, NeMo's ``audio_filepath``/``offset``/``duration``, EmoBox's
``wav``/``emo``); columns named ``meta_*`` (and ``duration``, ``text``...) are kept out of
the way. Problems in one row are refused with the row's line and reason while the other rows
are used; problems with the whole file raise :class:`ManifestError` before any audio is read.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import soundfile as sf

from ser_features.clip_source import clip_key
from ser_features.corpora import ClipLabels, ScannedClip

#: The manifest contract: every column a manifest may have, required ones first.
COLUMNS: tuple[str, ...] = (
    "path",
    "label",
    "speaker",
    "gender",
    "session",
    "start",
    "end",
    "corpus",
)
REQUIRED: tuple[str, ...] = ("path", "label")
#: Other tools' names for the contract's columns.
ALIASES: dict[str, str] = {
    "file_name": "path", "filename": "path", "file": "path", "audio_filepath": "path",
    "wav": "path", "audio": "path", "emotion": "label", "emo": "label",
    "speaker_id": "speaker", "offset": "start",
}  # fmt: skip
#: Columns read but not used (``duration`` gives ``end`` when there is an ``offset``/``start``).
INFORMATIONAL: frozenset[str] = frozenset({"duration", "length", "key", "text", "transcript"})
#: File suffixes read as manifests.
MANIFEST_SUFFIXES: frozenset[str] = frozenset({".csv", ".tsv", ".jsonl", ".parquet"})
#: Segment ends may pass the file's end by this much (rounding in other tools' exports).
END_TOLERANCE_S = 0.01

_GENDERS = {"m": "male", "male": "male", "man": "male", "f": "female", "female": "female",
            "woman": "female"}  # fmt: skip


class ManifestError(ValueError):
    """A manifest that cannot be read at all; the message names the file, row or column and
    what to do. Nothing was read from the audio when it is raised."""


@dataclass
class ManifestRows:
    """The clips of one manifest, its refused rows (``(where, reason)``), and every audio
    file its rows name (refused rows' too)."""

    clips: list[ScannedClip] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    files: set[Path] = field(default_factory=set)


def corpus_name(name: str) -> str:
    """A corpus name usable in speaker ids: lower case, ``[a-z0-9_]`` (``Calls 2026`` ->
    ``calls_2026``)."""
    return re.sub(r"[^a-z0-9_]+", "_", name.strip().lower()).strip("_") or "corpus"


def read_manifest(path: str | Path, *, corpus: str | None = None) -> ManifestRows:
    """Read, check and resolve the manifest ``path`` into clips and refused rows.

    ``corpus`` is the default corpus name (else the file stem). Raises
    :class:`ManifestError` for a file that is not UTF-8, is separated by ``;``, lacks a
    required column, names an unknown one, or cannot be parsed.
    """
    path = Path(path)
    frame, line_of = _read_table(path)
    frame = _contract_columns(frame, path)
    folder = path.resolve().parent
    default_corpus = corpus_name(corpus or path.stem)
    rows = ManifestRows()
    headers: dict[str, float | str] = {}
    first_line: dict[str, int] = {}
    for position, row in enumerate(frame.to_dict("records")):
        where = f"{path}: {line_of(position)}"
        if given := _text(row, "path"):
            rows.files.add(_resolve(folder, given))
        try:
            clip = _clip(row, folder, default_corpus, headers)
        except _RowProblem as problem:
            rows.refused.append((where, str(problem)))
            continue
        key = clip_key(str(clip.path), clip.start, clip.end)
        if key in first_line:
            rows.refused.append((where, f"duplicate of {first_line[key]} (the same clip)"))
            continue
        first_line[key] = line_of(position)
        rows.clips.append(clip)
    return rows


class _RowProblem(ValueError):
    """One row that cannot be used; its message is the reason."""


def _read_table(path: Path):
    """The manifest as strings, and a function naming a row by its line (``line 4``)."""
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise ManifestError(
            f"{path}: a manifest must end in {', '.join(sorted(MANIFEST_SUFFIXES))}"
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from exc
    if suffix == ".parquet":
        try:
            frame = pd.read_parquet(io.BytesIO(raw))
        except Exception as exc:  # pyarrow raises many types for a damaged file
            raise ManifestError(f"{path}: not a readable parquet file ({exc})") from exc
        return frame, lambda position: f"row {position + 1}"
    text = _utf8(raw, path)
    if suffix == ".jsonl":
        return _read_jsonl(text, path)
    separator = "\t" if suffix == ".tsv" else ","
    header = text.lstrip("\ufeff").split("\n", 1)[0]
    if suffix == ".csv" and ";" in header and "," not in header:
        raise ManifestError(
            f"{path}: the header uses ';' as its separator ({header.strip()!r}); save the "
            "spreadsheet as CSV with commas (or as .tsv with tabs)"
        )
    try:
        frame = pd.read_csv(
            io.StringIO(text.lstrip("\ufeff")), sep=separator, dtype=str, keep_default_na=False
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ManifestError(f"{path}: cannot be parsed as {suffix[1:].upper()} ({exc})") from None
    return frame, lambda position: f"line {position + 2}"


def _utf8(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ManifestError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); save the "
            "manifest with UTF-8 encoding (spreadsheets: 'CSV UTF-8')"
        ) from None


def _read_jsonl(text: str, path: Path):
    records, lines, bad = [], [], []
    for number, line in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            bad.append(number)
            record = {}
        records.append(record)
        lines.append(number)
    frame = pd.DataFrame.from_records(records)
    for number in bad:  # refused row by row: an empty record has no path
        frame.loc[lines.index(number), "__bad_json__"] = "not a JSON object"
    return frame, lambda position: f"line {lines[position]}"


def _contract_columns(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``frame`` with its columns renamed to the contract's; file-level problems raise."""
    renamed: dict[str, str] = {}
    for column in frame.columns:
        name = str(column).strip()
        canonical = ALIASES.get(name.lower(), name.lower())
        if canonical in COLUMNS:
            if canonical in renamed.values():
                other = next(k for k, v in renamed.items() if v == canonical)
                raise ManifestError(
                    f"{path}: columns {other!r} and {name!r} both give {canonical!r}; keep one"
                )
            renamed[column] = canonical
        elif not (
            canonical in INFORMATIONAL or canonical.startswith("meta_") or column == "__bad_json__"
        ):
            raise ManifestError(
                f"{path}: unknown column {name!r}; a manifest has {', '.join(COLUMNS)} "
                "(path and label required); rename it, remove it, or call it 'meta_...' to "
                "keep it beside the clips unused"
            )
    frame = frame.rename(columns=renamed)
    missing = [column for column in REQUIRED if column not in frame.columns]
    if missing:
        raise ManifestError(
            f"{path}: no {' or '.join(repr(m) for m in missing)} column (columns: "
            f"{', '.join(map(str, frame.columns)) or 'none'}); a manifest needs 'path' "
            "(the audio file) and 'label' (its emotion)"
        )
    if "start" in frame.columns and "end" not in frame.columns and "duration" not in frame:
        raise ManifestError(f"{path}: a 'start' column needs an 'end' (or 'duration') column")
    if "end" in frame.columns and "start" not in frame.columns:
        raise ManifestError(f"{path}: an 'end' column needs a 'start' column")
    return frame


def _text(row: dict, column: str) -> str | None:
    value = row.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    value = str(value).strip()
    return value or None


def _seconds(row: dict, column: str) -> float | None:
    value = _text(row, column)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise _RowProblem(f"{column} {value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise _RowProblem(f"{column} {value!r} must be a number of seconds >= 0")
    return seconds


def _clip(row: dict, folder: Path, default_corpus: str, headers: dict) -> ScannedClip:
    """One row as a clip; raises :class:`_RowProblem` naming what is wrong."""
    if _text(row, "__bad_json__"):
        raise _RowProblem("not a JSON object")
    given = _text(row, "path")
    if given is None:
        raise _RowProblem("empty path")
    label = _text(row, "label")
    if label is None:
        raise _RowProblem("empty label")
    start, end = _seconds(row, "start"), _seconds(row, "end")
    if start is not None and end is None and (length := _seconds(row, "duration")) is not None:
        end = start + length
    if (start is None) != (end is None):
        raise _RowProblem("a segment needs both start and end")
    if start is not None and end is not None and end <= start:
        raise _RowProblem(f"end ({end:g} s) must be after start ({start:g} s)")
    file = _resolve(folder, given)
    duration = _file_duration(file, given, headers)
    if end is not None and end > duration + END_TOLERANCE_S:
        raise _RowProblem(
            f"segment {start:g}-{end:g} s lies outside {given} ({duration:.2f} s long)"
        )
    corpus = corpus_name(_text(row, "corpus") or default_corpus)
    speaker, session = _text(row, "speaker"), _text(row, "session")
    if speaker is not None:
        group, grouped_by = speaker, "speaker"
    elif session is not None:
        group, grouped_by = f"session-{session}", "session"
    else:
        group, grouped_by = f"recording-{given}", "recording"
    gender = _text(row, "gender")
    labels = ClipLabels(
        corpus=corpus,
        speaker=f"{corpus}_{group}",
        gender=_GENDERS.get(gender.lower(), gender.lower()) if gender else None,
        emotion=label,
        session=session,
        grouped_by=grouped_by,
    )
    length = (end - start) if start is not None and end is not None else duration
    return ScannedClip(file, labels, start, end, length)


def _resolve(folder: Path, given: str) -> Path:
    """The absolute path of ``given``, relative to the manifest's ``folder`` unless absolute."""
    return Path(os.path.abspath(folder / Path(given).expanduser()))


def _file_duration(file: Path, given: str, headers: dict[str, float | str]) -> float:
    """The file's duration from its header (read once per file); problems raise."""
    key = str(file)
    if key not in headers:
        if not file.is_file():
            headers[key] = f"audio file not found: {given} (looked for {file})"
        else:
            try:
                headers[key] = float(sf.info(key).duration)
            except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
                headers[key] = f"{given}: not readable audio ({exc})"
            except OSError as exc:
                headers[key] = f"{given}: cannot read the file ({exc.strerror or exc})"
    found = headers[key]
    if isinstance(found, str):
        raise _RowProblem(found)
    return found
