"""``seed180``: the mean of 40 MFCC, 12 chroma and 128 mel bands.

This is the recipe the widely copied speech-emotion projects use (librosa defaults:
``n_fft=2048``, ``hop_length=512``, chroma with estimated tuning on the magnitude
spectrum).  Kept for comparison with published numbers.  Here it is computed from one
shared STFT; on the same signal it matches the separate librosa calls within 1e-4
relative, 1e-5 absolute (see ``tests/test_feature_sets.py``, against the published code in
``tests/seed_recipe.py``).
"""

from __future__ import annotations

import numpy as np

from ser_features.audio import Clip, LoadOptions
from ser_features.feature_sets.spec import FeatureSpec
from ser_features.spectral import SpectralAnalysis


def describe_seed180(clip: Clip) -> dict[str, float]:
    """Mean MFCC (40), chroma (12) and mel power (128) over all frames: 180 columns."""
    analysis = SpectralAnalysis(clip.samples, clip.sample_rate)
    blocks = {
        "mfcc": analysis.mfcc(n_mfcc=40, n_mels=128).mean(axis=1),
        "chroma": analysis.chroma().mean(axis=1),
        "mel": analysis.mel_power(128).mean(axis=1),
    }
    return {
        f"{block}_{i:03d}": float(value)
        for block, values in blocks.items()
        for i, value in enumerate(np.asarray(values))
    }


SEED180 = FeatureSpec(
    name="seed180",
    version=1,
    description="mean of 40 MFCC, 12 chroma, 128 mel bands (published baseline recipe)",
    load=LoadOptions(sample_rate=16000),
    describer=describe_seed180,
)
