"""What a run would see in its data, before it runs: ``ser data check``.

Reads folders and manifests the way extraction does (:func:`~ser_features.sources.find_clips`)
and file headers only, never the audio itself, so it answers in seconds for thousands of
rows.

Examples
--------
>>> report = check_sources(["calls/manifest.csv"])            # doctest: +SKIP
>>> report.stops_a_run, report.clips_per_label()               # doctest: +SKIP
(False, {'neutral': 812, 'frustrated': 96, ...})
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import soundfile as sf

from ser_features.corpora import ScannedClip
from ser_features.labels import rare_labels
from ser_features.manifests import ManifestError
from ser_features.sources import find_clips


@dataclass
class DataCheck:
    """Clips, their durations, and every problem found in some sources.

    ``refused`` are rows or files a run would quarantine (it still runs); ``errors`` are
    problems that stop a run (an unreadable manifest, no clips, a label too rare to split).
    """

    clips: pd.DataFrame
    refused: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: clips whose label an experiment's label mapping drops, per label before mapping
    left_by_mapping: dict[str, int] = field(default_factory=dict)

    @property
    def stops_a_run(self) -> bool:
        """Whether a training run on these sources would stop."""
        return bool(self.errors)

    def clips_per_label(self) -> dict[str, int]:
        """Number of clips of each label, most frequent first."""
        return self.clips["label"].value_counts().to_dict() if len(self.clips) else {}


def check_sources(
    sources: Iterable[str | Path],
    *,
    relabel: Callable[[pd.Series], pd.Series] | None = None,
) -> DataCheck:
    """Check every source as a run would read it; problems are reported, never raised.

    ``relabel`` maps the data's labels as an experiment does (``data.labels``: None for a
    clip that leaves), so the counts and the split check are those a run would train on.
    """
    try:
        scan = find_clips(list(sources))
    except (ManifestError, FileNotFoundError, NotADirectoryError) as exc:
        return DataCheck(_clip_table([]), errors=[str(exc)])
    table = _clip_table(scan.clips)
    left: dict[str, int] = {}
    if relabel is not None and len(table):
        mapped = relabel(table["label"])
        left = table.loc[mapped.isna(), "label"].value_counts().to_dict()
        table = table.assign(label=mapped).loc[mapped.notna()].reset_index(drop=True)
    check = DataCheck(
        table,
        refused=list(scan.refused),
        skipped=[(str(path), reason) for path, reason in scan.skipped],
        left_by_mapping={str(label): int(n) for label, n in left.items()},
    )
    if table.empty:
        check.errors.append("no labelled clips found: a run would have nothing to train on")
        return check
    labels = sorted(table["label"].unique())
    if len(labels) < 2:
        check.errors.append(
            f"only one label ({labels[0]!r}) remains: a model needs at least two to tell "
            "apart; add clips of another label or keep more labels (data.labels)"
        )
    for label, (clips, groups) in rare_labels(table["label"], table["group"]).items():
        check.errors.append(
            f"label {label!r} has {clips} clip(s) from {groups} speaker group(s): a "
            "speaker-independent split needs it from at least 2, to test on one it did not "
            "train on; add clips, merge it into another label (data.labels.map) or drop it "
            "(data.labels.drop)"
        )
    return check


def _clip_table(clips: list[ScannedClip]) -> pd.DataFrame:
    """One row per clip: file, span, label, group, duration (read from headers if unknown)."""
    rows = []
    for clip in clips:
        rows.append(
            {
                "file": str(clip.path),
                "start": clip.start,
                "end": clip.end,
                "label": clip.labels.emotion,
                "corpus": clip.labels.corpus,
                "group": clip.labels.speaker,
                "grouped_by": clip.labels.grouped_by,
                "duration_s": clip.duration_s
                if clip.duration_s is not None
                else _header_duration(clip.path),
            }
        )
    columns = ["file", "start", "end", "label", "corpus", "group", "grouped_by", "duration_s"]
    return pd.DataFrame(rows, columns=columns)


def _header_duration(path: Path) -> float:
    """The duration the file's header declares (NaN when it cannot be read)."""
    try:
        return float(sf.info(str(path)).duration)
    except (RuntimeError, TypeError, OSError):
        return float("nan")
