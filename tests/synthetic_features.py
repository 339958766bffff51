"""Learnable-across-speakers feature tables for trainer tests: class centres, a per-speaker
offset and per-clip noise."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def speaker_blobs(
    labels: Sequence[str],
    *,
    n_speakers: int,
    per_class: int,
    n_features: int,
    centre_scale: float = 1.0,
    offset_scale: float = 0.3,
    seed: int = 0,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``(features, labels, speakers)``: speakers ``spk0``..., columns ``f0``/``f00``..."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=centre_scale, size=(len(labels), n_features))
    rows, row_labels, speakers = [], [], []
    for s in range(n_speakers):
        offset = rng.normal(scale=offset_scale, size=n_features)
        for c, label in enumerate(labels):
            rows.append(centres[c] + offset + rng.normal(size=(per_class, n_features)))
            row_labels += [label] * per_class
            speakers += [f"spk{s}"] * per_class
    width = len(str(n_features - 1))
    columns = [f"f{i:0{width}d}" for i in range(n_features)]
    return pd.DataFrame(np.vstack(rows), columns=columns), np.array(row_labels), np.array(speakers)


def frame_blobs(
    labels: Sequence[str],
    *,
    n_speakers: int,
    per_class: int,
    n_frames: int = 30,
    n_bands: int = 12,
    seed: int = 0,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Frame tables named like ``logmel_frames`` (a smaller grid): each class lifts its own
    bands on part of the frames, each speaker adds a channel offset, lengths vary."""
    from ser_features.feature_sets.logmel_frames import N_FRAMES_COLUMN, PAD_VALUE

    rng = np.random.default_rng(seed)
    rows, lengths, row_labels, speakers = [], [], [], []
    for s in range(n_speakers):
        channel = rng.normal(scale=2.0, size=n_bands)
        for c, label in enumerate(labels):
            for _ in range(per_class):
                length = int(rng.integers(8, n_frames + 1))
                grid = np.full((n_frames, n_bands), PAD_VALUE)
                real = rng.normal(size=(length, n_bands)) * 3 - 40 + channel
                start = int(rng.integers(0, length // 2))
                lifted = (3 * c) % n_bands
                real[start : start + length // 2, lifted : lifted + 3] += 6.0
                grid[:length] = real
                rows.append(grid.ravel())
                lengths.append(length)
                row_labels.append(label)
                speakers.append(f"spk{s}")
    columns = [f"lm_f{f:03d}_b{b:02d}" for f in range(n_frames) for b in range(n_bands)]
    table = pd.DataFrame(np.vstack(rows), columns=columns)
    table[N_FRAMES_COLUMN] = np.array(lengths, dtype=float)
    return table, np.array(row_labels), np.array(speakers)
