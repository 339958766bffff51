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

from ser_features.audio import LEVELLED, SPEECH_LEVELLED, Clip, LoadOptions
from ser_features.feature_sets.spec import FeatureSpec
from ser_features.functionals import summarise
from ser_features.pitch import PitchTrack, track_pitch
from ser_features.spectral import SpectralAnalysis

N_FFT = 512
HOP = 160
N_MFCC = 20
N_MELS = 40


def describe_spectral_prosodic(
    clip: Clip,
    *,
    db_reference: Literal["unit", "peak"] = "unit",
    top_db: float = 80.0,
    speech_only: bool = False,
) -> dict[str, float]:
    """All descriptors of the default set for one clip (about 830 columns).

    ``db_reference`` and ``top_db`` set the reference and range of the log-mel bands and
    the MFCC computed from them (see :class:`~ser_features.spectral.SpectralAnalysis`).
    With ``speech_only`` the frame descriptors are summarised over the frames a voice
    activity detector calls speech (:func:`speech_frames`), so pauses filled with noise,
    babble or a room's tail do not move them.
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
    keep = speech_frames(clip) if speech_only else None

    def frames(matrix: np.ndarray) -> np.ndarray:
        return matrix if keep is None else matrix[:, keep(matrix.shape[1])]

    features: dict[str, float] = {}
    features |= summarise(frames(mfcc), _names("mfcc", N_MFCC))
    features |= summarise(frames(delta), _names("mfcc_d", N_MFCC))
    features |= summarise(frames(delta2), _names("mfcc_dd", N_MFCC))
    features |= summarise(frames(analysis.log_mel(N_MELS)), _names("logmel", N_MELS))
    features |= summarise(frames(chroma), _names("chroma", 12))
    features |= summarise(frames(contrast), _names("contrast", contrast.shape[0]))
    features |= summarise(frames(tonnetz), _names("tonnetz", 6))
    features |= summarise(
        frames(spectral), ["zcr", "rms_db", "centroid", "bandwidth", "rolloff", "flatness"]
    )
    features |= summarise(
        frames(np.vstack([semitones, pitch.voicing])), ["f0_semitones", "voicing"]
    )
    features |= _prosody(pitch, rms, clip)
    return features


#: Fewer speech frames than this and every frame is summarised (too little to choose from).
MIN_SPEECH_FRAMES = 10


def speech_frames(clip: Clip):
    """A function giving, for a descriptor of ``n`` frames of 10 ms, which frames are speech
    (from the clip's voice activity probabilities, computed here when the clip has none);
    all frames when fewer than :data:`MIN_SPEECH_FRAMES` are."""
    from ser_features.speech_activity import WINDOW, speech_probability, speech_windows

    probability = clip.speech
    if probability is None:
        probability = speech_probability(clip.samples, clip.sample_rate)
    speaking = speech_windows(probability)
    window = WINDOW * clip.sample_rate // 16000

    def keep(n: int) -> np.ndarray:
        if len(speaking) == 0:
            return np.ones(n, dtype=bool)
        index = np.minimum(np.arange(n) * HOP // window, len(speaking) - 1)
        mask = speaking[index]
        return mask if mask.sum() >= MIN_SPEECH_FRAMES else np.ones(n, dtype=bool)

    return keep


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

#: The levelled descriptors of speech only: the clip is cut to the speech a voice activity
#: detector hears (not by level), levelled as ``spectral_prosodic_levelled``, and every frame
#: descriptor is summarised over speech frames alone. Noise in the pauses, a room's tail and
#: the leading and trailing noise that level-trimming keeps no longer move the numbers.
SPECTRAL_PROSODIC_SPEECH = FeatureSpec(
    name="spectral_prosodic_speech",
    version=1,
    description=(
        "spectral_prosodic_levelled of the speech only: cut to the speech a voice activity "
        "detector (Silero VAD) hears, frame descriptors summarised over speech frames"
    ),
    load=SPEECH_LEVELLED,
    describer=functools.partial(
        describe_spectral_prosodic, db_reference="peak", top_db=60.0, speech_only=True
    ),
)
