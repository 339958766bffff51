"""Speaker normalisation: standardise every feature within each speaker's own clips.

Much of what separates two clips in acoustic-feature space is who speaks (pitch range, vocal
tract, recording level), not how they feel.  Standardising each speaker's clips by that
speaker's mean and standard deviation removes most of it.  The statistics need several clips
of the speaker but never their labels: on the test side they come from the test speaker's
unlabelled clips (a session, a call, an enrolment), which a deployed model has only when the
caller sends several clips of one speaker together.  A lone clip cannot be normalised.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Fewer clips than this give statistics too noisy to normalise by.
MIN_CLIPS_PER_SPEAKER = 4


def standardise_per_speaker(
    features: pd.DataFrame,
    speakers: np.ndarray | pd.Series,
    *,
    reference: np.ndarray | None = None,
) -> pd.DataFrame:
    """``features`` standardised within each speaker.

    Parameters
    ----------
    features
        Rows are clips, columns are numeric features.
    speakers
        The speaker (or session) of each row.
    reference
        Boolean mask of the rows whose statistics are used (e.g. original clips, not their
        augmented copies); all rows when ``None``.  Every row is normalised.

    Raises
    ------
    ValueError
        If a speaker has fewer than :data:`MIN_CLIPS_PER_SPEAKER` reference clips.
    """
    speakers = np.asarray(speakers)
    if speakers.shape != (len(features),):
        raise ValueError(f"speakers must have shape ({len(features)},), got {speakers.shape}")
    reference = np.ones(len(features), bool) if reference is None else np.asarray(reference)
    values = features.to_numpy(dtype=np.float64)
    out = np.empty_like(values)
    for speaker in pd.unique(speakers):
        rows = speakers == speaker
        basis = values[rows & reference]
        if len(basis) < MIN_CLIPS_PER_SPEAKER:
            raise ValueError(
                f"speaker '{speaker}' has {len(basis)} clip(s); speaker normalisation needs at "
                f"least {MIN_CLIPS_PER_SPEAKER} clips of each speaker"
            )
        scale = basis.std(axis=0)
        scale[scale < 1e-12] = 1.0
        out[rows] = (values[rows] - basis.mean(axis=0)) / scale
    return pd.DataFrame(out, index=features.index, columns=features.columns)
