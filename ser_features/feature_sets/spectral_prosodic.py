"""``spectral_prosodic``: the default set, spectral shape plus prosody, several statistics each.

Low-level descriptors on 32 ms frames with a 10 ms hop (one STFT, one mel
spectrogram): 20 MFCC with deltas and delta-deltas, 40 log-mel bands, 12 chroma, 7
spectral-contrast bands, 6 tonnetz dimensions, ZCR, RMS level, spectral centroid,
bandwidth, roll-off and flatness, F0 (in semitones) and voicing strength.  Each is
summarised by :data:`~ser_features.functionals.FUNCTIONALS`; clip-level prosody adds the
voiced ratio, F0 range, jitter, shimmer, a syllable-rate estimate and the duration.
"""

from __future__ import annotations

import functools
from typing import Literal

import librosa
import numpy as np

from ser_features.audio import LEVELLED, Clip, LoadOptions
from ser_features.feature_sets.spec import FeatureSpec
from ser_features.functionals import summarise
from ser_features.pitch import PitchTrack, track_pitch
from ser_features.spectral import SpectralAnalysis

N_FFT = 512
HOP = 160
N_MFCC = 20
N_MELS = 40


def describe_spectral_prosodic(
    clip: Clip, *, db_reference: Literal["unit", "peak"] = "unit", top_db: float = 80.0
) -> dict[str, float]:
    """All descriptors of the default set for one clip (about 830 columns).

    ``db_reference`` and ``top_db`` set the reference and range of the log-mel bands and
    the MFCC computed from them (see :class:`~ser_features.spectral.SpectralAnalysis`).
    """
    sr = clip.sample_rate
    analysis = SpectralAnalysis(
        clip.samples, sr, n_fft=N_FFT, hop_length=HOP, db_reference=db_reference, top_db=top_db
    )
    magnitude = analysis.magnitude
    mfcc = analysis.mfcc(n_mfcc=N_MFCC, n_mels=N_MELS)
    width = min(9, mfcc.shape[1] - (1 - mfcc.shape[1] % 2))
    if width >= 3:
        delta = librosa.feature.delta(mfcc, width=width)
        delta2 = librosa.feature.delta(mfcc, width=width, order=2)
    else:
        delta = delta2 = np.zeros_like(mfcc)
    chroma = analysis.chroma(estimate_tuning=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        tonnetz = np.nan_to_num(librosa.feature.tonnetz(chroma=chroma, sr=sr))
    rms = analysis.frame_rms
    spectral = np.vstack(
        [
            librosa.feature.zero_crossing_rate(clip.samples, frame_length=N_FFT, hop_length=HOP)[
                0, : magnitude.shape[1]
            ],
            20 * np.log10(rms + 1e-6),
            librosa.feature.spectral_centroid(S=magnitude, sr=sr)[0],
            librosa.feature.spectral_bandwidth(S=magnitude, sr=sr)[0],
            librosa.feature.spectral_rolloff(S=magnitude, sr=sr)[0],
            librosa.feature.spectral_flatness(S=magnitude)[0],
        ]
    )
    contrast = librosa.feature.spectral_contrast(S=magnitude, sr=sr, fmin=100.0, n_bands=6)
    pitch = track_pitch(clip.samples, sr)
    semitones = 12 * np.log2(pitch.f0_hz / 100.0)

    features: dict[str, float] = {}
    features |= summarise(mfcc, _names("mfcc", N_MFCC))
    features |= summarise(delta, _names("mfcc_d", N_MFCC))
    features |= summarise(delta2, _names("mfcc_dd", N_MFCC))
    features |= summarise(analysis.log_mel(N_MELS), _names("logmel", N_MELS))
    features |= summarise(chroma, _names("chroma", 12))
    features |= summarise(contrast, _names("contrast", contrast.shape[0]))
    features |= summarise(tonnetz, _names("tonnetz", 6))
    features |= summarise(
        spectral, ["zcr", "rms_db", "centroid", "bandwidth", "rolloff", "flatness"]
    )
    features |= summarise(np.vstack([semitones, pitch.voicing]), ["f0_semitones", "voicing"])
    features |= _prosody(pitch, rms, clip)
    return features


def _names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}_{i:02d}" for i in range(count)]


def _prosody(pitch: PitchTrack, rms: np.ndarray, clip: Clip) -> dict[str, float]:
    """Clip-level prosody: voicing ratio, F0 range, jitter, shimmer, syllable rate."""
    f0 = pitch.f0_hz[pitch.voiced]
    voiced_ratio = float(pitch.voiced.mean()) if len(pitch.voiced) else 0.0
    if len(f0) >= 3:
        semitones = 12 * np.log2(f0 / 100.0)
        f0_range = float(np.percentile(semitones, 95) - np.percentile(semitones, 5))
        periods = 1.0 / f0
        jitter = float(np.mean(np.abs(np.diff(periods))) / np.mean(periods))
    else:
        f0_range = jitter = 0.0
    level = 20 * np.log10(rms + 1e-6)
    n = min(len(level), len(pitch.voiced))
    voiced_level = level[:n][pitch.voiced[:n]]
    shimmer_db = float(np.mean(np.abs(np.diff(voiced_level)))) if len(voiced_level) >= 3 else 0.0
    onsets = np.flatnonzero(np.diff(pitch.voiced.astype(np.int8)) == 1)
    duration = clip.duration_s
    return {
        "voiced_ratio": voiced_ratio,
        "f0_range_semitones": f0_range,
        "jitter_local": jitter,
        "shimmer_db": shimmer_db,
        "voiced_onsets_per_s": float(len(onsets)) / max(duration, 1e-3),
        "duration_s": duration,
    }


SPECTRAL_PROSODIC = FeatureSpec(
    name="spectral_prosodic",
    version=1,
    description=(
        "MFCC+deltas, log-mel, chroma, contrast, tonnetz, ZCR, RMS, centroid/bandwidth/"
        "rolloff/flatness, F0 and voicing; 6 functionals each, plus clip prosody"
    ),
    load=LoadOptions(sample_rate=16000, trim_top_db=40.0),
    describer=describe_spectral_prosodic,
)

#: The same descriptors of a levelled signal, for voices recorded elsewhere: every clip is
#: brought to -23 dBFS, gets a white-noise floor 40 dB under its RMS, and its log-mel bands
#: are measured from its loudest bin with a 60 dB range. No descriptor then depends on the
#: recording gain, and pauses look alike whether a studio left digital silence or room
#: noise. On RAVDESS + CREMA-D this costs little in-corpus UAR and lifts the cross-corpus
#: samples (docs/evaluation.md, the ablation table of the shipped champion).
SPECTRAL_PROSODIC_LEVELLED = FeatureSpec(
    name="spectral_prosodic_levelled",
    version=1,
    description=(
        "spectral_prosodic of a levelled clip: -23 dBFS, a noise floor 40 dB under the "
        "speech, log-mel relative to the loudest bin (60 dB range)"
    ),
    load=LEVELLED,
    describer=functools.partial(describe_spectral_prosodic, db_reference="peak", top_db=60.0),
)
