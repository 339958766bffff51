"""Named, versioned feature sets and the registry to look them up by name."""

from __future__ import annotations

from ser_features.feature_sets.opensmile_sets import COMPARE2016, EGEMAPS
from ser_features.feature_sets.seed180 import SEED180
from ser_features.feature_sets.spec import FeatureSpec
from ser_features.feature_sets.spectral_prosodic import SPECTRAL_PROSODIC

FEATURE_SETS: dict[str, FeatureSpec] = {
    spec.name: spec for spec in (SPECTRAL_PROSODIC, SEED180, EGEMAPS, COMPARE2016)
}
DEFAULT_FEATURE_SET = SPECTRAL_PROSODIC.name


def get_feature_spec(name: str) -> FeatureSpec:
    """The registered spec called ``name``; a ``ValueError`` lists the known names."""
    try:
        return FEATURE_SETS[name]
    except KeyError:
        known = ", ".join(sorted(FEATURE_SETS))
        raise ValueError(f"unknown feature set {name!r}; choose one of: {known}") from None


__all__ = ["DEFAULT_FEATURE_SET", "FEATURE_SETS", "FeatureSpec", "get_feature_spec"]
