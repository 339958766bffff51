"""Every way labelled audio enters: manifests, AudioFolder folders, label folders, corpus names.

:func:`find_clips` takes what a user points at and returns one :class:`ScanResult` of clips,
whatever the layout:

* a manifest file (``.csv``, ``.tsv``, ``.jsonl``, ``.parquet``; :mod:`ser_features.manifests`);
* a folder holding a Hugging Face AudioFolder ``metadata.csv`` (or ``metadata.jsonl``):
  ``file_name`` plus a ``label`` (or ``emotion``) column, read as a manifest;
* a folder of a built-in corpus (RAVDESS, CREMA-D, TESS, EmoDB, SAVEE file names);
* otherwise a folder whose sub-folders are the labels (``angry/x.wav``, ``calm/y.wav``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ser_features.clip_source import clip_key
from ser_features.corpora import (
    AUDIO_EXTENSIONS,
    NO_CORPUS_REASON,
    ClipLabels,
    ScannedClip,
    ScanResult,
    scan_folders,
)
from ser_features.manifests import MANIFEST_SUFFIXES, ManifestError, corpus_name, read_manifest

#: File names of an AudioFolder's metadata, in the order looked for.
AUDIOFOLDER_METADATA: tuple[str, ...] = ("metadata.csv", "metadata.jsonl", "metadata.parquet")


def find_clips(sources: Iterable[str | Path] | str | Path) -> ScanResult:
    """The labelled clips of every source (folders or manifest files), each clip once.

    Raises ``FileNotFoundError`` for a source that does not exist and
    :class:`~ser_features.manifests.ManifestError` for a manifest that cannot be read or a
    file that is neither a folder nor a manifest.
    """
    if isinstance(sources, str | Path):
        sources = [sources]
    result = ScanResult()
    seen: dict[str, str] = {}
    for source in sources:
        path = Path(source).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"no such folder or manifest: {path} (given as {source!r})")
        found = _read_source(path)
        result.skipped.extend(found.skipped)
        result.refused.extend(found.refused)
        for clip in found.clips:
            key = clip_key(os.path.realpath(clip.path), clip.start, clip.end)
            if key in seen:
                result.skipped.append((clip.path, f"same clip as in {seen[key]} (listed twice)"))
                continue
            seen[key] = str(source)
            result.clips.append(clip)
    return result


def _read_source(path: Path) -> ScanResult:
    if path.is_file():
        if path.suffix.lower() not in MANIFEST_SUFFIXES:
            raise ManifestError(
                f"{path} is neither a folder of audio nor a manifest "
                f"({', '.join(sorted(MANIFEST_SUFFIXES))})"
            )
        return _from_manifest(path)
    metadata = next((path / n for n in AUDIOFOLDER_METADATA if (path / n).is_file()), None)
    if metadata is not None:
        return _audiofolder(path, metadata)
    scan = scan_folders(path)
    if scan.clips:
        return scan
    by_folder = label_folders(path)
    return by_folder if by_folder.clips else scan


def _from_manifest(path: Path) -> ScanResult:
    rows = read_manifest(path)
    return ScanResult(clips=rows.clips, refused=rows.refused)


def _audiofolder(folder: Path, metadata: Path) -> ScanResult:
    """A Hugging Face AudioFolder: the metadata file's rows; unlisted audio is skipped."""
    rows = read_manifest(metadata, corpus=folder.resolve().name)
    result = ScanResult(clips=rows.clips, refused=rows.refused)
    for file in _audio_files(folder):
        if file not in rows.files:
            result.skipped.append((file, f"not listed in {metadata.name}"))
    return result


def label_folders(root: Path) -> ScanResult:
    """Clips of a folder whose sub-folders are labels (``root/angry/x.wav``).

    The label is the first-level sub-folder's name, however deep the file is; audio lying
    directly in ``root`` is skipped. Nothing names the speakers, so every recording is its
    own group (``grouped_by == "recording"``): splits cannot promise disjoint speakers.
    """
    root = Path(os.path.abspath(root))
    corpus = corpus_name(root.name)
    result = ScanResult()
    for file in _audio_files(root):
        relative = file.relative_to(root)
        if len(relative.parts) < 2:
            result.skipped.append((file, f"{NO_CORPUS_REASON}, and not inside a label folder"))
            continue
        labels = ClipLabels(
            corpus=corpus,
            speaker=f"{corpus}_recording-{relative.as_posix()}",
            gender=None,
            emotion=relative.parts[0],
            grouped_by="recording",
        )
        result.clips.append(ScannedClip(file, labels))
    return result


def _audio_files(folder: Path) -> list[Path]:
    """Audio files under ``folder``, sorted, hidden entries left out."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.rsplit(".", 1)[-1].lower() in AUDIO_EXTENSIONS:
                found.append(Path(os.path.abspath(Path(dirpath) / name)))
    return found
