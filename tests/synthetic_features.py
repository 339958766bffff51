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
