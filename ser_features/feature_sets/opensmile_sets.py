"""openSMILE functionals (audEERING): ``egemaps`` (88 eGeMAPS v02 parameters; also of a
levelled clip, ``egemaps_levelled``) and
``compare2016`` (the 6,373 ComParE 2016 functionals: energy, spectral, MFCC, voicing,
jitter/shimmer and their deltas, each summarised by ~50 statistics)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ser_features.audio import LEVELLED, Clip, LoadOptions
from ser_features.feature_sets.spec import FeatureSpec


@lru_cache(maxsize=2)
def _smile(feature_set: str):
    import opensmile

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet[feature_set],
        feature_level=opensmile.FeatureLevel.Functionals,
    )


@dataclass(frozen=True)
class OpenSmileFunctionals:
    """Describes a clip by an openSMILE functionals set; columns are ``{prefix}_{name}``."""

    feature_set: str
    prefix: str

    def __call__(self, clip: Clip) -> dict[str, float]:
        frame = _smile(self.feature_set).process_signal(clip.samples, clip.sample_rate)
        values = np.nan_to_num(frame.to_numpy()[0]).tolist()  # one array op, not one per value
        return dict(zip(_columns(self.feature_set, self.prefix), values, strict=True))


@lru_cache(maxsize=4)
def _columns(feature_set: str, prefix: str) -> tuple[str, ...]:
    """The prefixed column names of ``feature_set``, built once per process."""
    return tuple(f"{prefix}_{name}" for name in _smile(feature_set).feature_names)


describe_egemaps = OpenSmileFunctionals("eGeMAPSv02", "egemaps")
describe_compare2016 = OpenSmileFunctionals("ComParE_2016", "compare")

EGEMAPS = FeatureSpec(
    name="egemaps",
    version=1,
    description="eGeMAPS v02: 88 functionals of a minimalistic acoustic parameter set (openSMILE)",
    load=LoadOptions(sample_rate=16000),
    describer=describe_egemaps,
)

#: eGeMAPS of a clip trimmed and levelled as ``spectral_prosodic_levelled`` (``LEVELLED``):
#: openSMILE's loudness and energy descriptors are absolute, so without levelling they
#: carry the recording gain of each corpus.
EGEMAPS_LEVELLED = FeatureSpec(
    name="egemaps_levelled",
    version=1,
    description="eGeMAPS v02 of a levelled clip: trimmed, -23 dBFS, a noise floor 40 dB under it",
    load=LEVELLED,
    describer=describe_egemaps,
)

COMPARE2016 = FeatureSpec(
    name="compare2016",
    version=1,
    description="ComParE 2016: 6,373 functionals of 65 low-level descriptors (openSMILE)",
    load=LoadOptions(sample_rate=16000),
    describer=describe_compare2016,
)
