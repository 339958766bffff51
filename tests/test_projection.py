"""The principal-component projection AutoML may learn from, and repeated rows as weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments.families.projection import Projection, fit_projection


def _table(seed: int = 0, rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(rows, 3))
    mixing = rng.normal(size=(3, 12))
    values = latent @ mixing + 0.01 * rng.normal(size=(rows, 12))
    values[:, 5] = 7.0  # a constant column
    return pd.DataFrame(values * np.arange(1, 13), columns=[f"f{i}" for i in range(12)])


def test_three_latent_factors_need_three_components():
    table = _table()
    projection = fit_projection(table, 3)
    projected = projection.transform(table)
    assert list(projected.columns) == ["pc001", "pc002", "pc003"]
    # standardised columns rebuilt from three components lose almost nothing
    standard = np.nan_to_num((table.to_numpy() - projection.mean) / projection.scale)
    rebuilt = projected.to_numpy() @ projection.components
    assert np.abs(rebuilt - standard).max() < 0.1
    variances = projected.var(axis=0).to_numpy()
    assert (np.diff(variances) <= 1e-9).all()  # leading component first


def test_weights_equal_repeated_rows():
    table = _table(1)
    counts = np.random.default_rng(2).integers(1, 4, size=len(table))
    repeated = table.loc[table.index.repeat(counts)].reset_index(drop=True)
    weighted = fit_projection(table, 4, weights=counts)
    plain = fit_projection(repeated, 4)
    np.testing.assert_allclose(weighted.mean, plain.mean, atol=1e-9)
    np.testing.assert_allclose(weighted.scale, plain.scale, atol=1e-9)
    np.testing.assert_allclose(weighted.components, plain.components, atol=1e-6)


def test_saved_projection_transforms_identically(tmp_path):
    table = _table(3)
    projection = fit_projection(table, 5)
    projection.save(tmp_path / "projection.npz")
    loaded = Projection.load(tmp_path / "projection.npz")
    shuffled = table[table.columns[::-1]]  # column order of a request does not matter
    pd.testing.assert_frame_equal(loaded.transform(shuffled), projection.transform(table))
    with pytest.raises(KeyError):
        loaded.transform(table.drop(columns=["f3"]))


def test_collapse_repeated_rows_keeps_order_and_counts():
    h2o_trainer = pytest.importorskip("experiments.families.h2o_trainer")
    table = pd.DataFrame({"a": [1.0, 2.0, 1.0, 3.0, 2.0, 1.0], "label": list("xyxzyw")})
    unique, weights, kept = h2o_trainer.collapse_repeated_rows(table)
    assert unique.to_dict("list") == {"a": [1.0, 2.0, 3.0, 1.0], "label": ["x", "y", "z", "w"]}
    assert weights.tolist() == [2, 2, 1, 1]
    assert kept.tolist() == [0, 1, 0, 2, 1, 3]
    pd.testing.assert_frame_equal(unique.iloc[kept].reset_index(drop=True), table)
