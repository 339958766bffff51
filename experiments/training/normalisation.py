"""Feature normalisation: within each speaker's own clips, and within each corpus.

**Per speaker** (:func:`standardise_per_speaker`, the session companion):
Much of what separates two clips in acoustic-feature space is who speaks (pitch range, vocal
tract, recording level), not how they feel.  Standardising each speaker's clips by that
speaker's mean and standard deviation removes most of it.  The statistics need several clips
of the speaker but never their labels: on the test side they come from the test speaker's
unlabelled clips (a session, a call, an enrolment), which a deployed model has only when the
caller sends several clips of one speaker together.  A lone clip cannot be normalised.

**For lone clips** (:class:`FeatureNormaliser`, ``data.normalise`` in an experiment file) the
statistics are fitted on the training side and saved with the model:

- ``corpus``: every training corpus is standardised by its own statistics, which removes what
  separates recording set-ups rather than emotions; a clip at prediction time, whose corpus
  is unknown, is standardised by the typical corpus (the mean of the corpora's statistics);
- ``speaker``: the same within every training speaker; a lone clip gets the typical speaker;
- ``chained``: per-speaker standardisation, then a rank (quantile) normalisation of every
  feature fitted on the training side, then each clip's vector scaled to unit L2 norm, the
  chain that travelled best across corpora in Kaya & Karpov (Neurocomputing, 2018).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.preprocessing import QuantileTransformer

#: Names accepted by ``data.normalise``.
NORMALISATIONS: tuple[str, ...] = ("none", "corpus", "speaker", "chained")

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


@dataclass
class FeatureNormaliser:
    """Standardisation by group (corpus or speaker) fitted on the training side.

    ``fit_transform`` normalises the training rows by their own group's statistics;
    ``transform`` normalises any clip by the typical group (the mean of the groups' means
    and standard deviations), which is what a lone clip from an unknown corpus gets.
    """

    kind: str = "none"
    seed: int = 0
    mean_: np.ndarray | None = field(default=None, repr=False)
    scale_: np.ndarray | None = field(default=None, repr=False)
    columns_: list[str] = field(default_factory=list, repr=False)
    quantiles_: QuantileTransformer | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in NORMALISATIONS:
            raise ValueError(f"normalisation {self.kind!r} is not one of {NORMALISATIONS}")

    @property
    def active(self) -> bool:
        """Whether it changes anything (``none`` does not)."""
        return self.kind != "none"

    def fit_transform(
        self,
        features: pd.DataFrame,
        *,
        corpora: np.ndarray,
        speakers: np.ndarray,
        reference: np.ndarray | None = None,
    ) -> pd.DataFrame:
        """Fit on the training rows and return them normalised by their own group."""
        self.columns_ = [str(c) for c in features.columns]
        if not self.active:
            return features
        groups = np.asarray(corpora if self.kind == "corpus" else speakers).astype(str)
        reference = np.ones(len(features), bool) if reference is None else np.asarray(reference)
        values = features.to_numpy(dtype=np.float64)
        out = np.empty_like(values)
        means, scales = [], []
        for group in pd.unique(groups):
            rows = groups == group
            basis = values[rows & reference] if (rows & reference).any() else values[rows]
            mean, scale = basis.mean(axis=0), _safe_scale(basis.std(axis=0))
            out[rows] = (values[rows] - mean) / scale
            means.append(mean)
            scales.append(scale)
        self.mean_, self.scale_ = np.mean(means, axis=0), np.mean(scales, axis=0)
        if self.kind == "chained":
            self.quantiles_ = QuantileTransformer(
                n_quantiles=min(1000, len(out)),
                output_distribution="normal",
                random_state=self.seed,
            ).fit(out[reference])
            out = _unit_rows(self.quantiles_.transform(out))
        return pd.DataFrame(out, index=features.index, columns=features.columns)

    def transform(self, features: pd.DataFrame) -> pd.DataFrame:
        """Any clips, normalised as a lone clip of an unknown corpus and speaker."""
        if not self.active:
            return features
        if self.mean_ is None or self.scale_ is None:
            raise RuntimeError("FeatureNormaliser is not fitted; call fit_transform() first")
        frame = features.loc[:, self.columns_]
        out = (frame.to_numpy(dtype=np.float64) - self.mean_) / self.scale_
        if self.quantiles_ is not None:
            out = _unit_rows(self.quantiles_.transform(out))
        return pd.DataFrame(out, index=frame.index, columns=frame.columns)


def _safe_scale(scale: np.ndarray) -> np.ndarray:
    scale = np.asarray(scale, dtype=np.float64).copy()
    scale[scale < 1e-12] = 1.0
    return scale


def _unit_rows(values: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    return values / np.where(norms < 1e-12, 1.0, norms)
