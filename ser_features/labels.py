"""Label names: the canonical emotions the built-in corpora use, and label schemes.

A model learns whatever labels its data has. The built-in corpora's file-name parsers map
their codes onto :data:`EMOTIONS`; an experiment may map and filter any data's labels
further with :func:`apply_label_scheme` (``data.labels`` in an experiment file).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

#: Emotion labels in their canonical order (RAVDESS order, then EmoDB's extra ``boredom``).
EMOTIONS: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
    "boredom",
)

#: The labels every corpus here has (RAVDESS, CREMA-D, TESS, EmoDB, SAVEE): the 4-class task.
SHARED_BY_EVERY_CORPUS: tuple[str, ...] = ("angry", "happy", "neutral", "sad")


def ordered_labels(present: set[str] | list[str]) -> list[str]:
    """Return the labels in ``present`` in canonical order (unknown labels last, sorted)."""
    present = set(present)
    known = [label for label in EMOTIONS if label in present]
    return known + sorted(present - set(EMOTIONS))


def rare_labels(labels, groups, *, min_groups: int = 2) -> dict[str, tuple[int, int]]:
    """Labels spoken by fewer than ``min_groups`` speaker groups: ``{label: (clips, groups)}``.

    A speaker-independent split cannot put such a label on both sides.

    >>> rare_labels(["sad", "sad", "joy"], ["a", "b", "a"])
    {'joy': (1, 1)}
    """
    frame = pd.DataFrame({"label": list(labels), "group": list(groups)})
    counts = frame.groupby("label")["group"].agg(["size", "nunique"])
    rare = counts[counts["nunique"] < min_groups]
    return {str(label): (int(n), int(g)) for label, (n, g) in rare.iterrows()}


def apply_label_scheme(
    labels: pd.Series,
    *,
    rename: Mapping[str, str] | None = None,
    drop: Iterable[str] = (),
    keep: Iterable[str] = (),
) -> pd.Series:
    """``labels`` renamed by ``rename`` (``{"calm": "neutral", "ps": "surprised"}``; several
    names may merge into one), then those in ``drop``, or not in ``keep`` when it is given,
    set to None (their clips leave the experiment). ``drop`` and ``keep`` name labels after
    renaming.

    >>> apply_label_scheme(pd.Series(["calm", "ps", "boredom"]),
    ...                    rename={"calm": "neutral", "ps": "surprised"}, drop=["boredom"]).tolist()
    ['neutral', 'surprised', None]
    """
    mapped = labels.astype(object).map(lambda label: (rename or {}).get(label, label))
    dropped = set(drop)
    kept = set(keep)
    leaves = mapped.isin(dropped) | (~mapped.isin(kept) if kept else False)
    return mapped.where(~leaves, None)
