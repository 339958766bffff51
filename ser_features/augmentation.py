"""Named, seeded audio augmentations for the training side (``audiomentations``).

An augmented copy is derived from one clip and is only ever used when that clip is on the
training side of a split: the tables of augmented copies keep the source clip's ``path`` and
``digest``, and :func:`experiments.training.fitting.fit_on_split` keeps copies of training
clips only.
Each copy is deterministic: the random draw is seeded by the clip's content digest and the
augmentation's name, so a re-run or a cache hit gives identical numbers.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ser_features.audio import Clip
from ser_features.numba_kernels import load_librosa_kernels


@dataclass(frozen=True)
class Augmentation:
    """A named recipe: ``build()`` returns an ``audiomentations`` transform."""

    name: str
    version: int
    description: str
    build: Callable[[], Callable[..., np.ndarray]]

    @property
    def tag(self) -> str:
        """``name@vN``, part of the cache key of augmented features."""
        return f"{self.name}@v{self.version}"


def _pitch_shift():
    import audiomentations as am

    return am.PitchShift(min_semitones=-3.0, max_semitones=3.0, p=1.0)


def _gaussian_noise():
    import audiomentations as am

    return am.AddGaussianSNR(min_snr_db=10.0, max_snr_db=30.0, p=1.0)


def _time_stretch():
    import audiomentations as am

    return am.Compose(
        [
            am.TimeStretch(min_rate=0.85, max_rate=1.15, leave_length_unchanged=False, p=1.0),
            am.AddGaussianSNR(min_snr_db=15.0, max_snr_db=35.0, p=0.5),
        ]
    )


AUGMENTATIONS: dict[str, Augmentation] = {
    a.name: a
    for a in (
        Augmentation("pitch_shift", 1, "pitch shift, uniform in [-3, +3] semitones", _pitch_shift),
        Augmentation("gaussian_noise", 1, "white noise at 10-30 dB SNR", _gaussian_noise),
        Augmentation(
            "time_stretch", 1, "tempo x0.85-1.15, half with 15-35 dB noise", _time_stretch
        ),
    )
}


def get_augmentation(name: str) -> Augmentation:
    """The registered augmentation called ``name``; a ``ValueError`` lists the known names."""
    try:
        return AUGMENTATIONS[name]
    except KeyError:
        known = ", ".join(sorted(AUGMENTATIONS))
        raise ValueError(f"unknown augmentation {name!r}; choose one of: {known}") from None


def augment_clip(clip: Clip, augmentation: Augmentation, *, digest: str) -> Clip:
    """A copy of ``clip`` transformed by ``augmentation``, seeded by ``digest`` and its name."""
    load_librosa_kernels()
    seed = int.from_bytes(
        hashlib.blake2b(f"{digest}:{augmentation.tag}".encode(), digest_size=4).digest(), "big"
    )
    # audiomentations draws from the global generators; seed both for a reproducible copy.
    random.seed(seed)
    np.random.seed(seed)
    samples = augmentation.build()(
        samples=clip.samples.astype(np.float32), sample_rate=clip.sample_rate
    )
    samples = np.ascontiguousarray(samples, dtype=clip.samples.dtype)
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > 1.0:
        samples = samples / peak
    return replace(clip, samples=samples)
