"""Named, seeded audio augmentations for the training side (``audiomentations``).

An augmented copy is derived from one clip and is only ever used when that clip is on the
training side of a split: the tables of augmented copies keep the source clip's ``path`` and
``digest``, and :func:`experiments.training.fitting.fit_on_split` keeps copies of training
clips only.
Each copy is deterministic: the random draw is seeded by the clip's content digest and the
augmentation's name, so a re-run or a cache hit gives identical numbers. The draws come from
generators made for that one copy (:class:`Draws`), never from the global ``random`` /
``numpy.random`` state, which an augmentation leaves as it found it.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ser_features import conditions
from ser_features.audio import Clip
from ser_features.numba_kernels import load_librosa_kernels


@dataclass(frozen=True)
class Draws:
    """The random source of one augmented copy, both generators seeded by the copy's seed.

    Scalar parameters come from ``scalars`` in the order ``audiomentations`` draws them (a
    coin for the transform's probability ``p``, then the value), noise samples from ``noise``.
    """

    scalars: random.Random
    noise: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> Draws:
        return cls(random.Random(seed), np.random.default_rng(seed))

    def maybe_uniform(self, p: float, low: float, high: float) -> float | None:
        """With probability ``p`` a uniform draw in ``[low, high]``, else ``None``."""
        if self.scalars.random() >= p:
            return None
        return self.scalars.uniform(low, high)


@dataclass(frozen=True)
class Augmentation:
    """A named recipe: ``apply(samples, sample_rate, draws)`` returns the transformed samples,
    every random number taken from ``draws``."""

    name: str
    version: int
    description: str
    apply: Callable[[np.ndarray, int, Draws], np.ndarray]
    #: True: applied to the clip as recorded, before the feature set trims and levels it
    #: (a recording condition happens before any of that); False: to the loaded clip.
    as_recorded: bool = False

    @property
    def tag(self) -> str:
        """``name@vN``, part of the cache key of augmented features."""
        return f"{self.name}@v{self.version}"


def _with_parameters(transform, samples: np.ndarray, sample_rate: int, **parameters):
    """Run an ``audiomentations`` transform with ``parameters`` instead of its own draw."""
    transform.parameters = {"should_apply": True, **parameters}
    transform.freeze_parameters()
    return transform(samples=samples, sample_rate=sample_rate)


def _add_noise(samples: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise at ``snr_db`` dB SNR, as ``audiomentations.AddGaussianSNR``, from ``rng``."""
    from audiomentations.core.utils import calculate_desired_noise_rms, calculate_rms

    if samples.size == 0:
        return samples
    noise_std = float(calculate_desired_noise_rms(clean_rms=calculate_rms(samples), snr=snr_db))
    return samples + rng.normal(0.0, noise_std, size=samples.shape).astype(np.float32)


def _pitch_shift(samples: np.ndarray, sample_rate: int, draws: Draws) -> np.ndarray:
    import audiomentations as am

    semitones = draws.maybe_uniform(1.0, -3.0, 3.0)
    shift = am.PitchShift(min_semitones=-3.0, max_semitones=3.0, p=1.0)
    return _with_parameters(shift, samples, sample_rate, num_semitones=semitones)


def _gaussian_noise(samples: np.ndarray, sample_rate: int, draws: Draws) -> np.ndarray:
    snr_db = draws.maybe_uniform(1.0, 10.0, 30.0)
    return _add_noise(samples, snr_db, draws.noise)


def _time_stretch(samples: np.ndarray, sample_rate: int, draws: Draws) -> np.ndarray:
    import audiomentations as am

    rate = draws.maybe_uniform(1.0, 0.85, 1.15)
    stretch = am.TimeStretch(min_rate=0.85, max_rate=1.15, leave_length_unchanged=False, p=1.0)
    samples = _with_parameters(stretch, samples, sample_rate, rate=rate)
    snr_db = draws.maybe_uniform(0.5, 15.0, 35.0)
    return samples if snr_db is None else _add_noise(samples, snr_db, draws.noise)


def _condition_draw(
    draw: Callable[[np.ndarray, int, np.random.Generator], tuple[np.ndarray, str]],
) -> Callable[[np.ndarray, int, Draws], np.ndarray]:
    """An ``apply`` from a training draw of :mod:`ser_features.conditions`, fed the copy's
    noise generator."""
    return lambda samples, sample_rate, draws: draw(samples, sample_rate, draws.noise)[0]


AUGMENTATIONS: dict[str, Augmentation] = {
    a.name: a
    for a in (
        Augmentation("pitch_shift", 1, "pitch shift, uniform in [-3, +3] semitones", _pitch_shift),
        Augmentation("gaussian_noise", 2, "white noise at 10-30 dB SNR", _gaussian_noise),
        Augmentation(
            "time_stretch", 2, "tempo x0.85-1.15, half with 15-35 dB noise", _time_stretch
        ),
        Augmentation(
            "recording_conditions",
            2,
            "one random recording condition (noise 5-30 dB SNR, room, telephone, codec, "
            "clipping, level; ser_features.conditions.training_condition), as recorded",
            _condition_draw(conditions.training_condition),
            as_recorded=True,
        ),
        Augmentation(
            "room_or_babble",
            2,
            "a room (RT60 0.3-1.2 s), babble of the clip's own voice (5-25 dB SNR), or both "
            "(ser_features.conditions.training_room_or_babble), as recorded",
            _condition_draw(conditions.training_room_or_babble),
            as_recorded=True,
        ),
        Augmentation(
            "telephone_line",
            1,
            "a telephone line, G.711 or GSM, half with 10-30 dB noise first "
            "(ser_features.conditions.training_telephone), as recorded",
            _condition_draw(conditions.training_telephone),
            as_recorded=True,
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
    samples = augmentation.apply(
        clip.samples.astype(np.float32), clip.sample_rate, Draws.from_seed(seed)
    )
    samples = np.ascontiguousarray(samples, dtype=clip.samples.dtype)
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > 1.0:
        samples = samples / peak
    return replace(clip, samples=samples, speech=None)
