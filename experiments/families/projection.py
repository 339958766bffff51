"""A principal-component projection of the feature columns, fitted on training rows only.

Tree ensembles and GLMs on a few thousand clips spend most of their time scanning ~800
correlated functionals; their leading principal components (of standardised columns) keep the
variance at a fraction of the cost. The projection is fitted on the rows a trainer is given
(never labels, never test rows), saved beside the model and applied before it when serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: Prefix of the projected columns: ``pc001``, ``pc002``, ...
PREFIX = "pc"


@dataclass(frozen=True)
class Projection:
    """Standardise the named columns, then project onto ``components`` (rows are axes)."""

    columns: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray

    @property
    def names(self) -> list[str]:
        """Names of the projected columns."""
        return [f"{PREFIX}{i + 1:03d}" for i in range(len(self.components))]

    def transform(self, features: pd.DataFrame) -> pd.DataFrame:
        """The projected rows of ``features`` (which must hold :attr:`columns`)."""
        values = features.loc[:, list(self.columns)].to_numpy(dtype=np.float64)
        values = np.nan_to_num((values - self.mean) / self.scale)
        return pd.DataFrame(values @ self.components.T, columns=self.names, index=features.index)

    def save(self, path: Path) -> None:
        """Write the projection as one ``.npz`` file."""
        np.savez(
            path,
            columns=np.array(self.columns, dtype=str),
            mean=self.mean,
            scale=self.scale,
            components=self.components,
        )

    @classmethod
    def load(cls, path: Path) -> Projection:
        """Read a projection written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as stored:
            return cls(
                tuple(str(c) for c in stored["columns"]),
                stored["mean"],
                stored["scale"],
                stored["components"],
            )


def fit_projection(
    features: pd.DataFrame, n_components: int, *, weights: np.ndarray | None = None
) -> Projection:
    """Principal components of ``features`` after standardising each column.

    ``weights`` (rows repeated that many times) weight the mean, the scales and the
    covariance, so collapsing repeated rows does not change the projection. Constant
    columns get unit scale. At most ``min(n_components, n_rows, n_columns)`` components.
    """
    values = features.to_numpy(dtype=np.float64)
    w = np.ones(len(values)) if weights is None else np.asarray(weights, dtype=np.float64)
    mean = np.average(values, axis=0, weights=w)
    scale = np.sqrt(np.average((values - mean) ** 2, axis=0, weights=w))
    scale[~np.isfinite(scale) | (scale < 1e-12)] = 1.0
    standard = np.nan_to_num((values - mean) / scale)
    covariance = (standard * (w / w.sum())[:, None]).T @ standard
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    k = int(min(n_components, *standard.shape))
    components = eigenvectors[:, np.argsort(eigenvalues)[::-1][:k]].T
    # a fixed sign per axis (largest loading positive), so refits give the same columns
    signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    return Projection(
        tuple(str(c) for c in features.columns), mean, scale, components * signs[:, None]
    )
