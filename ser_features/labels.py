"""The one emotion vocabulary that every corpus is mapped onto."""

from __future__ import annotations

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
