"""What a recording as received lets a listener hear: seconds of speech, noise, band, clipping
and level, each with a warning when it is too poor to trust an answer.

Everything is measured on the recording as sent (its own rate, before any trimming or
levelling), from the voice activity detector's speech probability per 32 ms window
(:mod:`~ser_features.speech_activity`); the measuring itself is plain NumPy.

Examples
--------
>>> import numpy as np
>>> rate = 16000
>>> hiss = 0.001 * np.random.default_rng(0).standard_normal(16 * 512)
>>> tone = 0.3 * np.sin(np.arange(48 * 512) * 2 * np.pi * 440 / rate)
>>> probability = np.repeat([0.0, 0.9], [16, 48])  # the detector: speech after 0.5 s
>>> facts = recording_quality(np.concatenate([hiss, tone]), rate, probability)
>>> facts["speech_s"], facts["snr_db"], facts["bandwidth_hz"], facts["warnings"]
(1.536, 46.6, 500.0, ['narrowband'])
>>> in_words(facts)[1][:46]
'Telephone-band sound (nothing above 0.5 kHz): '
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ser_features.speech_activity import WINDOW_S, speech_windows

#: Less speech than this is too little to judge an emotion by (measured with
#: ``benchmarks/min_speech.py``; see docs/serving.md).
MIN_SPEECH_S = 1.0
#: Speech this close to the noise under it (dB) makes an answer less reliable.
LOW_SNR_DB = 15.0
#: Speech whose energy lies under this frequency (Hz), or a file whose rate cannot carry
#: more, came through a telephone band.
NARROWBAND_HZ = 4000.0
#: A file at this rate or lower cannot carry more than a telephone band.
TELEPHONE_RATE = int(2 * NARROWBAND_HZ)
#: A larger share of samples at full scale is audible clipping.
CLIPPED_SHARE = 0.001
#: Speech quieter than this (dBFS RMS) was recorded far too low.
QUIET_DBFS = -55.0
#: Share of the speech energy that lies under the bandwidth. Speech energy sits mostly under
#: 1 kHz: 99% of it lies under 3-5 kHz in most wideband clips, too close to a telephone band.
BAND_ENERGY = 0.9995
#: Samples at or beyond this magnitude are at full scale.
FULL_SCALE = 0.999
#: Non-speech windows, away from speech, needed to measure the noise between words.
MIN_NOISE_WINDOWS = 8
#: Non-speech windows this close to speech still carry its onset or decay: not noise.
GUARD_WINDOWS = 4
#: Non-speech windows this far (dB) above their median hold speech the detector missed.
OUTLIER_DB = 6.0
#: The fallback noise estimate: the quietest share of 20 ms frames.
QUIETEST_SHARE = 0.1
FRAME_S = 0.02
#: Power floor (about -100 dBFS, under 16-bit quantisation): digital silence is not -inf.
POWER_FLOOR = 1e-10


#: What an answer's ``quality`` looks like (the served model's output signature shows it).
EXAMPLE = {
    "speech_s": 2.1,
    "snr_db": 31.5,
    "sample_rate": 16000,
    "bandwidth_hz": 7406.0,
    "clipped_share": 0.0,
    "level_dbfs": -27.3,
    "warnings": ["low_snr"],
}


def telephone_band(sample_rates: Iterable[int]) -> bool:
    """Whether clips at these rates (as recorded) are mostly telephone-band: a model trained
    on them hears every recording through that band (:data:`TELEPHONE_RATE`)."""
    rates = np.asarray(list(sample_rates), dtype=float)
    return bool(len(rates)) and bool(np.mean(rates <= TELEPHONE_RATE) > 0.5)


def recording_quality(
    samples: np.ndarray,
    rate: int,
    probability: np.ndarray,
    *,
    min_speech_s: float = MIN_SPEECH_S,
    model_telephone_band: bool = False,
) -> dict[str, Any]:
    """The facts of a recording (mono ``samples`` at its own ``rate``) and their warnings.

    ``probability`` is the detector's speech probability per 32 ms window of the recording.
    Returns ``speech_s``, ``snr_db`` (None without speech), ``sample_rate``, ``bandwidth_hz``,
    ``clipped_share``, ``level_dbfs`` (None without speech) and ``warnings``, a list of codes
    among ``too_little_speech``, ``low_snr``, ``narrowband``, ``clipped`` and ``quiet``
    (``narrowband`` only for a model that learnt from wideband recordings: see
    :func:`telephone_band`).
    """
    samples = np.asarray(samples, dtype=np.float64)
    speaking = speech_windows(probability)
    bounds = _window_bounds(len(speaking), rate, len(samples))
    power = _window_power(samples, bounds)
    speech_s = min(float(speaking.sum() * WINDOW_S), len(samples) / rate)
    facts = {
        "speech_s": round(speech_s, 3),
        "snr_db": _rounded(snr_db(samples, rate, speaking, power, bounds)),
        "sample_rate": int(rate),
        "bandwidth_hz": round(bandwidth_hz(samples, rate, speaking), 0),
        "clipped_share": round(float(np.mean(np.abs(samples) >= FULL_SCALE)), 5),
        "level_dbfs": _rounded(speech_level_dbfs(power, bounds, speaking)),
    }
    warnings = warnings_of(
        facts, min_speech_s=min_speech_s, model_telephone_band=model_telephone_band
    )
    return {**facts, "warnings": warnings}


def warnings_of(
    facts: dict[str, Any],
    *,
    min_speech_s: float = MIN_SPEECH_S,
    model_telephone_band: bool = False,
) -> list[str]:
    """The warning codes that ``facts`` call for, in a fixed order."""
    narrowband = facts["bandwidth_hz"] < NARROWBAND_HZ or facts["sample_rate"] <= TELEPHONE_RATE
    checks = {
        "too_little_speech": facts["speech_s"] < min_speech_s,
        "low_snr": facts["snr_db"] is not None and facts["snr_db"] < LOW_SNR_DB,
        "narrowband": narrowband and not model_telephone_band,
        "clipped": facts["clipped_share"] > CLIPPED_SHARE,
        "quiet": facts["level_dbfs"] is not None and facts["level_dbfs"] < QUIET_DBFS,
    }
    return [code for code, raised in checks.items() if raised]


def in_words(facts: dict[str, Any], *, min_speech_s: float = MIN_SPEECH_S) -> list[str]:
    """What ``facts`` say, for people: one line of what was heard, then each warning."""
    return [heard_line(facts), *(_WORDS[code](facts, min_speech_s) for code in facts["warnings"])]


def heard_line(facts: dict[str, Any]) -> str:
    """Speech heard, estimated SNR, band, clipping and speech level in one line."""
    snr = "SNR not measurable" if facts["snr_db"] is None else f"SNR about {facts['snr_db']:.0f} dB"
    level = "" if facts["level_dbfs"] is None else f", speech at {facts['level_dbfs']:.0f} dBFS"
    return (
        f"Heard {facts['speech_s']:.1f} s of speech; {snr}; sound up to "
        f"{facts['bandwidth_hz'] / 1000:.1f} kHz ({facts['sample_rate'] / 1000:g} kHz file); "
        f"{facts['clipped_share']:.1%} of samples clipped{level}."
    )


_WORDS = {
    "too_little_speech": lambda f, least: (
        f"Too little speech to judge ({f['speech_s']:.1f} s heard; at least {least:g} s needed): "
        "no emotion is given."
    ),
    "low_snr": lambda f, _: (
        f"Noisy recording (SNR {f['snr_db']:.0f} dB): this answer is less reliable."
    ),
    "narrowband": lambda f, _: (
        f"Telephone-band sound (nothing above {f['bandwidth_hz'] / 1000:.1f} kHz): the model "
        "learnt from wideband recordings, so this answer is less reliable."
    ),
    "clipped": lambda f, _: (
        f"Clipped recording ({f['clipped_share']:.1%} of samples at full scale): the loud parts "
        "are distorted, so this answer is less reliable."
    ),
    "quiet": lambda f, _: (
        f"Very quiet recording (speech at {f['level_dbfs']:.0f} dBFS): record closer to the "
        "microphone or raise its level."
    ),
}


def snr_db(
    samples: np.ndarray,
    rate: int,
    speaking: np.ndarray,
    power: np.ndarray,
    bounds: np.ndarray,
) -> float | None:
    """Estimated signal-to-noise ratio (dB): the mean power of the speech windows (less the
    noise in them) over the mean power of the non-speech windows at least
    :data:`GUARD_WINDOWS` away from speech, leaving out those more than :data:`OUTLIER_DB`
    over their median (words the detector missed; noise that comes and goes, such as
    babble, is then under-stated a little).

    When fewer than :data:`MIN_NOISE_WINDOWS` such windows exist (speech from end to end),
    the noise is estimated instead from the quietest :data:`QUIETEST_SHARE` of 20 ms frames
    of the whole recording, which over-states the noise when those frames hold quiet speech.
    None when there is no speech.
    """
    if not speaking.any():
        return None
    speech = _mean_power(power, bounds, speaking)
    near = np.convolve(speaking, np.ones(2 * GUARD_WINDOWS + 1), mode="same") > 0
    pauses = ~near & (bounds[:, 1] > bounds[:, 0])
    if pauses.sum() >= MIN_NOISE_WINDOWS:
        noise = _pause_power(power, bounds, pauses)
    else:
        noise = _quietest_frames_power(samples, rate)
    noise = max(noise, POWER_FLOOR)
    return float(10 * np.log10(max(speech - noise, 0.01 * speech, POWER_FLOOR) / noise))


def bandwidth_hz(samples: np.ndarray, rate: int, speaking: np.ndarray) -> float:
    """The frequency (Hz) under which :data:`BAND_ENERGY` of the speech energy lies, from the
    mean power spectrum of the speech windows (of the whole recording when none), at the
    recording's own rate."""
    n_fft = int(2 ** np.ceil(np.log2(WINDOW_S * rate)))
    if len(samples) < n_fft:
        return rate / 2
    starts = np.arange(0, len(samples) - n_fft + 1, n_fft // 2)
    centres = ((starts + n_fft // 2) / rate / WINDOW_S).astype(int)
    chosen = starts[speaking[np.minimum(centres, len(speaking) - 1)]] if speaking.any() else starts
    if len(chosen) == 0:
        chosen = starts
    frames = samples[chosen[:, None] + np.arange(n_fft)] * np.hanning(n_fft)
    spectrum = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)
    cumulative = np.cumsum(spectrum)
    if cumulative[-1] <= 0:
        return rate / 2
    index = int(np.searchsorted(cumulative, BAND_ENERGY * cumulative[-1]))
    return float(np.fft.rfftfreq(n_fft, 1 / rate)[min(index, n_fft // 2)])


def speech_level_dbfs(power: np.ndarray, bounds: np.ndarray, speaking: np.ndarray) -> float | None:
    """RMS level (dBFS) of the speech windows; None when there is no speech."""
    if not speaking.any():
        return None
    return float(10 * np.log10(max(_mean_power(power, bounds, speaking), POWER_FLOOR)))


def _window_bounds(count: int, rate: int, length: int) -> np.ndarray:
    """First and last+1 sample of each 32 ms detector window at ``rate``."""
    edges = np.minimum(np.round(np.arange(count + 1) * WINDOW_S * rate).astype(int), length)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def _window_power(samples: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Summed squares of the samples of each window."""
    energy = np.concatenate([[0.0], np.cumsum(np.square(samples))])
    return energy[bounds[:, 1]] - energy[bounds[:, 0]]


def _mean_power(power: np.ndarray, bounds: np.ndarray, chosen: np.ndarray) -> float:
    """Mean power per sample over the ``chosen`` windows."""
    count = int(np.sum(bounds[chosen, 1] - bounds[chosen, 0]))
    return float(power[chosen].sum() / count) if count else 0.0


def _pause_power(power: np.ndarray, bounds: np.ndarray, pauses: np.ndarray) -> float:
    """Mean power of the ``pauses`` windows, without those :data:`OUTLIER_DB` over the median."""
    per_sample = power / np.maximum(bounds[:, 1] - bounds[:, 0], 1)
    limit = np.median(per_sample[pauses]) * 10 ** (OUTLIER_DB / 10)
    return _mean_power(power, bounds, pauses & (per_sample <= limit))


def _quietest_frames_power(samples: np.ndarray, rate: int) -> float:
    """Mean power of the quietest :data:`QUIETEST_SHARE` of 20 ms frames."""
    frame = max(1, int(FRAME_S * rate))
    n = len(samples) // frame
    if n == 0:
        return float(np.mean(np.square(samples))) if len(samples) else 0.0
    power = np.sort(np.mean(np.square(samples[: n * frame].reshape(n, frame)), axis=1))
    return float(power[: max(1, int(QUIETEST_SHARE * n))].mean())


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
