"""Splitting long recordings into speech segments at pauses.

A call or a session holds many utterances; emotion is judged per segment, and a recording's
overall emotion is the duration-weighted mean of its segments' probabilities.

Examples
--------
>>> import numpy as np
>>> rate = 16000
>>> speech = np.sin(np.arange(rate) / 3).astype("float32") * 0.3
>>> pause = np.zeros(rate // 2, dtype="float32")
>>> [(round(a, 1), round(b, 1)) for a, b in speech_segments(
...     np.concatenate([speech, pause, speech]), rate, max_segment_s=30)]
[(0.0, 1.0), (1.5, 2.5)]
"""

from __future__ import annotations

import itertools

import librosa
import numpy as np

from ser_features.numba_kernels import load_librosa_kernels


def speech_segments(
    samples: np.ndarray,
    sample_rate: int,
    *,
    top_db: float = 35.0,
    min_pause_s: float = 0.3,
    min_segment_s: float = 0.5,
    max_segment_s: float = 8.0,
) -> list[tuple[float, float]]:
    """Start and end times (s) of speech segments, split at pauses of at least ``min_pause_s``.

    Non-silent intervals closer than ``min_pause_s`` are merged; segments shorter than
    ``min_segment_s`` are dropped unless nothing else is left; segments longer than
    ``max_segment_s`` are cut into equal parts no longer than that.  A recording with no
    pause gives one segment spanning its non-silent part.
    """
    load_librosa_kernels()
    intervals = librosa.effects.split(samples, top_db=top_db, frame_length=1024, hop_length=256)
    if len(intervals) == 0:
        return [(0.0, len(samples) / sample_rate)]
    merged: list[list[int]] = [list(intervals[0])]
    for start, end in intervals[1:]:
        if (start - merged[-1][1]) / sample_rate < min_pause_s:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    spans = [(s / sample_rate, e / sample_rate) for s, e in merged]
    kept = [span for span in spans if span[1] - span[0] >= min_segment_s] or [
        max(spans, key=lambda span: span[1] - span[0])
    ]
    result: list[tuple[float, float]] = []
    for start, end in kept:
        parts = int(np.ceil((end - start) / max_segment_s))
        edges = np.linspace(start, end, parts + 1)
        result.extend((float(a), float(b)) for a, b in itertools.pairwise(edges))
    return result
