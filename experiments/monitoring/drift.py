"""Drift of a window of logged answers against the champion's reference.

Per feature: the population stability index (PSI) of the window against the reference (the
champion's training clips), over ten bins cut at the reference's deciles. Speakers differ:
one new speaker's clips are far from the whole reference on most features (PSI 0.7-1.3 on
RAVDESS actors held out of a RAVDESS reference), so a fixed PSI line would call every new
voice drift. A feature's limit is therefore the largest PSI any single training speaker has
against the other training speakers (at least :data:`FEATURE_PSI_FLOOR`): a feature drifts
when the window is further from the reference than any one training voice is. The window
drifts when at least :data:`DRIFT_SHARE_LIMIT` of the monitored features do.
The predicted labels' shares are compared with the reference answers' shares the same way
(``label_shift``: total variation distance, 0 to 1).

Evidently computes the same kind of report, but brings 27 more packages to the lock (a web
framework, NLTK, statsmodels, plotly and a telemetry client among them) and installs an HTTP
parser the scoring server would then pick up; PSI is a few lines of NumPy.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> reference = rng.normal(size=2000)
>>> round(population_stability_index(reference, rng.normal(size=500)), 2) < 0.1
True
>>> population_stability_index(reference, rng.normal(3, 1, size=500)) > 1
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FEATURE_PSI_FLOOR = 0.25
DRIFT_SHARE_LIMIT = 0.2
BINS = 10


def population_stability_index(reference: np.ndarray, window: np.ndarray) -> float:
    """PSI of ``window`` against ``reference`` over bins at the reference's deciles."""
    reference = np.asarray(reference, dtype=float)
    window = np.asarray(window, dtype=float)
    reference, window = reference[np.isfinite(reference)], window[np.isfinite(window)]
    if len(reference) < BINS or len(window) == 0:
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, BINS + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, reference), minlength=len(edges) + 1)
    actual = np.bincount(np.searchsorted(edges, window), minlength=len(edges) + 1)
    expected = np.maximum(expected / expected.sum(), 1e-4)
    actual = np.maximum(actual / actual.sum(), 1e-4)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


@dataclass
class DriftReport:
    """What a window of answers looks like against the reference."""

    n_predictions: int
    n_refused: int
    feature_psi: dict[str, float]
    feature_limits: dict[str, float]
    label_shares: dict[str, float]
    reference_label_shares: dict[str, float]
    mean_confidence: float
    reference_mean_confidence: float
    quality: dict[str, float] = field(default_factory=dict)
    share_limit: float = DRIFT_SHARE_LIMIT

    @property
    def drifted_features(self) -> list[str]:
        """Features whose PSI passes their limit, most drifted (relative to it) first."""
        over = [
            (psi / self.feature_limits[name], name)
            for name, psi in self.feature_psi.items()
            if psi > self.feature_limits[name]
        ]
        return [name for _, name in sorted(over, reverse=True)]

    @property
    def drifted_feature_share(self) -> float:
        """Share of the monitored features that drifted."""
        scored = [psi for psi in self.feature_psi.values() if np.isfinite(psi)]
        return len(self.drifted_features) / len(scored) if scored else 0.0

    @property
    def drift_detected(self) -> bool:
        """Whether enough features drifted to call the window drifted."""
        return self.drifted_feature_share >= self.share_limit

    @property
    def label_shift(self) -> float:
        """Total variation distance between predicted and reference label shares (0 to 1)."""
        labels = set(self.label_shares) | set(self.reference_label_shares)
        return 0.5 * sum(
            abs(self.label_shares.get(k, 0.0) - self.reference_label_shares.get(k, 0.0))
            for k in labels
        )

    def summary(self) -> dict[str, object]:
        """The JSON summary: counts, drift, label shift, confidence and data quality."""
        return {
            "n_predictions": self.n_predictions,
            "n_refused": self.n_refused,
            "drifted_feature_share": round(self.drifted_feature_share, 4),
            "drift_detected": self.drift_detected,
            "drifted_features": self.drifted_features,
            "share_limit": self.share_limit,
            "label_shift": round(self.label_shift, 4),
            "label_shares": self.label_shares,
            "reference_label_shares": self.reference_label_shares,
            "mean_confidence": round(self.mean_confidence, 4),
            "reference_mean_confidence": round(self.reference_mean_confidence, 4),
            "quality": self.quality,
        }


def compare(
    window: pd.DataFrame,
    reference: pd.DataFrame,
    reference_answers: pd.DataFrame,
    *,
    columns: list[str],
    share_limit: float = DRIFT_SHARE_LIMIT,
) -> DriftReport:
    """Drift of logged answers ``window`` (rows of the prediction log) against ``reference``
    (feature rows of the training clips, with their ``speaker``) and ``reference_answers``
    (``emotion`` and ``confidence`` of the champion on its test clips), over the monitored
    ``columns``."""
    answered = window[~window["refused"]]
    columns = [c for c in columns if c in reference.columns and c in answered.columns]
    psi = {c: population_stability_index(reference[c], answered[c]) for c in columns}
    limits = speaker_limits(reference, columns)
    quality = {
        "refused_share": float(window["refused"].mean()) if len(window) else 0.0,
        "median_duration_s": float(answered["duration_s"].median()) if len(answered) else 0.0,
        "mean_rms_dbfs": float(answered["rms_dbfs"].mean()) if len(answered) else 0.0,
        "clipped_share": float((answered["clipped_share"] > 0.001).mean())
        if len(answered)
        else 0.0,
        "silent_or_refused": int(window["refused"].sum()),
    }
    return DriftReport(
        n_predictions=len(window),
        n_refused=int(window["refused"].sum()),
        feature_psi=psi,
        feature_limits=limits,
        label_shares=_shares(answered["emotion"]),
        reference_label_shares=_shares(reference_answers["emotion"]),
        mean_confidence=float(answered["confidence"].mean()) if len(answered) else float("nan"),
        reference_mean_confidence=float(reference_answers["confidence"].mean()),
        quality=quality,
        share_limit=share_limit,
    )


def speaker_limits(reference: pd.DataFrame, columns: list[str]) -> dict[str, float]:
    """Per feature, the largest PSI of one training speaker against the other speakers
    (at least :data:`FEATURE_PSI_FLOOR`): how far a voice the model learnt can lie."""
    speakers = reference["speaker"].astype(str).to_numpy()
    limits = dict.fromkeys(columns, FEATURE_PSI_FLOOR)
    for speaker in np.unique(speakers):
        alone = speakers == speaker
        if alone.all():
            continue
        for column in columns:
            values = reference[column].to_numpy()
            psi = population_stability_index(values[~alone], values[alone])
            if np.isfinite(psi):
                limits[column] = max(limits[column], psi)
    return limits


def _shares(labels: pd.Series) -> dict[str, float]:
    counts = labels.dropna().astype(str).value_counts(normalize=True)
    return {str(k): round(float(v), 4) for k, v in counts.sort_index().items()}
