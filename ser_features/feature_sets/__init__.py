"""Named, versioned feature sets and the registry to look them up by name."""

from __future__ import annotations

import functools

import numpy as np

from ser_features.audio import Clip
from ser_features.feature_sets.combined import SEPARATOR, combine, combined
from ser_features.feature_sets.logmel_frames import LOGMEL_FRAMES
from ser_features.feature_sets.opensmile_sets import COMPARE2016, EGEMAPS, EGEMAPS_LEVELLED
from ser_features.feature_sets.seed180 import SEED180
from ser_features.feature_sets.spec import FeatureSpec
from ser_features.feature_sets.spectral_prosodic import (
    SPECTRAL_PROSODIC,
    SPECTRAL_PROSODIC_LEVELLED,
    SPECTRAL_PROSODIC_SPEECH,
)
from ser_features.feature_sets.ssl import is_ssl_name, parse_ssl_name, ssl_spec

FEATURE_SETS: dict[str, FeatureSpec] = {
    spec.name: spec
    for spec in (
        SPECTRAL_PROSODIC,
        SPECTRAL_PROSODIC_LEVELLED,
        SPECTRAL_PROSODIC_SPEECH,
        SEED180,
        EGEMAPS,
        EGEMAPS_LEVELLED,
        COMPARE2016,
        LOGMEL_FRAMES,
    )
}
DEFAULT_FEATURE_SET = SPECTRAL_PROSODIC.name


def get_feature_spec(name: str) -> FeatureSpec:
    """The registered spec called ``name``, a pretrained encoder's (``ssl:<id or folder>``,
    see :mod:`~ser_features.feature_sets.ssl`), or the combination ``a+b`` of such sets
    (see :mod:`~ser_features.feature_sets.combined`); a ``ValueError`` lists the known names."""
    parts = feature_set_parts(name)
    if len(parts) > 1 and any(is_ssl_name(part) for part in parts):
        return combine(tuple(get_feature_spec(part) for part in parts))  # encoder as it is now
    if len(parts) > 1:
        return combined(parts)
    if is_ssl_name(name):
        return ssl_spec(name)
    try:
        return FEATURE_SETS[name]
    except KeyError:
        known = ", ".join(sorted(FEATURE_SETS))
        raise ValueError(
            f"unknown feature set {name!r}; choose one of: {known} (or join several with "
            f"{SEPARATOR!r})"
        ) from None


def feature_set_parts(name: str) -> tuple[str, ...]:
    """The sets a name stands for: ``("compare2016", "logmel_frames")`` for
    ``compare2016+logmel_frames``; unknown parts (or a badly written ``ssl:`` part) raise
    ``ValueError``. Encoder parts are checked for syntax only: nothing is loaded."""
    parts = tuple(part.strip() for part in name.split(SEPARATOR))
    for part in parts:
        if is_ssl_name(part):
            parse_ssl_name(part)
    if len(parts) > 1:
        unknown = [part for part in parts if part not in FEATURE_SETS and not is_ssl_name(part)]
        encoders = [part for part in parts if is_ssl_name(part)]
        if unknown or len(set(parts)) != len(parts) or len(encoders) > 1:
            known = ", ".join(sorted(FEATURE_SETS))
            raise ValueError(
                f"feature set {name!r}: parts must be distinct ones of: {known}, and at most "
                "one ssl:<encoder>"
            )
    return parts


@functools.lru_cache(maxsize=32)
def feature_set_columns(name: str) -> tuple[str, ...]:
    """The columns the feature set ``name`` writes (from describing a short synthetic clip)."""
    spec = get_feature_spec(name)
    rate = spec.load.sample_rate
    time = np.arange(int(1.5 * rate)) / rate
    rng = np.random.default_rng(0)
    voiced = 0.3 * np.sin(2 * np.pi * 180 * time) * (1 + 0.5 * np.sin(2 * np.pi * 3 * time))
    samples = (voiced + 0.01 * rng.standard_normal(len(time))).astype(np.float32)
    return tuple(spec.describe(Clip(samples, rate, rate, 1)))


__all__ = [
    "DEFAULT_FEATURE_SET",
    "FEATURE_SETS",
    "FeatureSpec",
    "feature_set_columns",
    "feature_set_parts",
    "get_feature_spec",
    "is_ssl_name",
]
