"""Speaker normalisation: per-speaker statistics, reference rows, and its refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments.training.normalisation import MIN_CLIPS_PER_SPEAKER, standardise_per_speaker


def test_each_speaker_gets_zero_mean_unit_variance():
    rng = np.random.default_rng(0)
    features = pd.DataFrame(
        {"f0": np.r_[rng.normal(120, 10, 6), rng.normal(220, 30, 6)], "level": 3.0}
    )
    speakers = np.array(["a"] * 6 + ["b"] * 6)
    out = standardise_per_speaker(features, speakers)
    for speaker in ("a", "b"):
        rows = out[speakers == speaker]
        np.testing.assert_allclose(rows["f0"].mean(), 0, atol=1e-12)
        np.testing.assert_allclose(rows["f0"].std(ddof=0), 1, atol=1e-12)
    # a constant column stays finite (its scale is taken as 1)
    assert np.all(out["level"] == 0)
    assert list(out.index) == list(features.index)


def test_reference_rows_define_the_statistics_and_all_rows_are_normalised():
    features = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 100.0]})
    speakers = np.array(["a"] * 5)
    reference = np.array([True, True, True, True, False])
    out = standardise_per_speaker(features, speakers, reference=reference)
    mean, std = 2.5, np.std([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(out["x"], (features["x"] - mean) / std)


def test_too_few_clips_of_a_speaker_is_refused_with_the_minimum():
    features = pd.DataFrame({"x": np.arange(MIN_CLIPS_PER_SPEAKER + 1, dtype=float)})
    speakers = np.array(["a"] * MIN_CLIPS_PER_SPEAKER + ["b"])
    with pytest.raises(ValueError, match=f"'b' has 1 clip.*at least {MIN_CLIPS_PER_SPEAKER}"):
        standardise_per_speaker(features, speakers)
