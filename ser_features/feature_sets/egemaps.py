"""``egemaps``: the 88 eGeMAPS v02 functionals computed by audEERING's openSMILE."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ser_features.audio import Clip, LoadOptions
from ser_features.feature_sets.spec import FeatureSpec


@lru_cache(maxsize=1)
def _smile():
    import opensmile

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )


def describe_egemaps(clip: Clip) -> dict[str, float]:
    """The 88 eGeMAPS v02 functionals of ``clip`` (column names as openSMILE gives them)."""
    frame = _smile().process_signal(clip.samples, clip.sample_rate)
    row = frame.iloc[0]
    return {f"egemaps_{name}": float(np.nan_to_num(value)) for name, value in row.items()}


EGEMAPS = FeatureSpec(
    name="egemaps",
    version=1,
    description="eGeMAPS v02: 88 functionals of a minimalistic acoustic parameter set (openSMILE)",
    load=LoadOptions(sample_rate=16000),
    describe=describe_egemaps,
)
