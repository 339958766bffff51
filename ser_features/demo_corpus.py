"""A deterministic synthetic emotional-speech corpus laid out like RAVDESS.

The clips come from a small source-filter synthesiser: a Rosenberg glottal pulse train
with an F0 contour, jitter, shimmer and aspiration noise, shaped by a spectral-tilt
filter and a cascade of time-varying formant resonators, with consonant-like noise bursts
between vowel-like syllables.  Emotions differ in prosody and voice quality; speakers
differ in pitch, vocal-tract length and habits.  Nothing here is a real recording: the
corpus exists so that the whole pipeline can run on a fresh machine without a download.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from ser_features.errors import AudioError

__all__ = ["generate_demo_corpus"]

_DESCRIPTION = "Synthetic source-filter speech; not real recordings. Use for demos and tests only."
_PAD_S = 0.15  # low-level noise before and after the speech
_SPEECH_S = (0.92, 1.68)  # speech length bounds, so that clips are 1.2-2.0 s
_BLOCK_S = 0.01  # formant update interval
_STRONG = 1.7  # how much intensity 02 exaggerates the deviation from neutral


@dataclass(frozen=True)
class _Prosody:
    """Emotion profile; numeric fields are interpolated from neutral by intensity."""

    f0_st: float  # F0 level, semitones relative to the speaker's base
    range_st: float  # F0 excursion of the contour, semitones
    rate: float  # syllables per second
    energy_db: float  # loudness relative to neutral
    jitter: float  # relative s.d. of glottal periods
    shimmer: float  # relative s.d. of glottal pulse amplitudes
    breath: float  # aspiration noise relative to the glottal flow
    tilt: float  # one-pole low-pass coefficient on the source (higher = steeper tilt)
    oq: float  # glottal open quotient (lower = pressed, brighter voice)
    formant: float  # formant scaling (smiling/spread lips > 1)
    contour: str  # contour shape, see _CONTOURS


# fmt: off
_PROFILES: dict[str, _Prosody] = {
    "neutral":   _Prosody(0.0, 2.5, 4.3, 0.0, 0.006, 0.04, 0.06, 0.55, 0.60, 1.00, "decline"),
    "calm":      _Prosody(-1.0, 1.8, 3.9, -3.0, 0.005, 0.035, 0.12, 0.65, 0.66, 0.99, "decline"),
    "happy":     _Prosody(3.0, 6.0, 4.8, 3.0, 0.007, 0.045, 0.05, 0.45, 0.55, 1.04, "hat"),
    "sad":       _Prosody(-2.0, 1.5, 3.6, -4.0, 0.012, 0.06, 0.16, 0.72, 0.70, 0.97, "fall"),
    "angry":     _Prosody(4.0, 4.5, 4.9, 6.0, 0.009, 0.05, 0.03, 0.25, 0.42, 1.03, "fall"),
    "fearful":   _Prosody(5.0, 3.0, 5.3, 0.0, 0.020, 0.07, 0.14, 0.50, 0.60, 1.02, "tremor"),
    "disgust":   _Prosody(-1.5, 3.5, 3.7, 1.0, 0.014, 0.07, 0.08, 0.60, 0.50, 0.98, "low_fall"),
    "surprised": _Prosody(4.0, 8.0, 4.6, 3.0, 0.007, 0.045, 0.07, 0.45, 0.55, 1.03, "rise"),
}
# Lower bounds that keep exaggerated profiles physically sensible.
_FLOORS = dict(f0_st=-12.0, range_st=0.3, rate=2.0, energy_db=-20.0, jitter=0.001,
               shimmer=0.005, breath=0.0, tilt=0.0, oq=0.3, formant=0.9)
# fmt: on
_EMOTION_CODES = {name: i + 1 for i, name in enumerate(_PROFILES)}  # RAVDESS codes 01-08

# Peterson & Barney male formants (F1, F2, F3) in Hz; F4, F5 are fixed per speaker.
_VOWELS = {
    "I": (390.0, 1990.0, 2550.0),
    "A": (730.0, 1090.0, 2440.0),
    "O": (570.0, 840.0, 2410.0),
    "V": (640.0, 1190.0, 2390.0),
}
# Syllables: (onset consonant, start vowel, end vowel); "Kids are talking by the door",
# "Dogs are sitting by the door", squeezed to five syllables each.
_STATEMENTS = {
    1: [("k", "I", "I"), ("", "A", "V"), ("t", "O", "I"), ("b", "A", "I"), ("d", "O", "V")],
    2: [("d", "O", "O"), ("", "A", "V"), ("s", "I", "I"), ("b", "A", "I"), ("d", "O", "V")],
}
# Consonant: (F2 locus in Hz, noise band in Hz, burst length in s, burst level)
_CONSONANTS = {
    "k": (2000.0, (1500.0, 4000.0), 0.030, 0.35),
    "t": (1800.0, (3500.0, 7000.0), 0.025, 0.30),
    "s": (1700.0, (4500.0, 7500.0), 0.080, 0.25),
    "d": (1700.0, (2500.0, 5000.0), 0.015, 0.12),
    "b": (800.0, (300.0, 1500.0), 0.012, 0.10),
}
_STRESS = np.array([1.0, 0.7, 1.0, 0.8, 0.9])
_BANDWIDTHS = np.array([60.0, 90.0, 140.0, 200.0, 260.0])


@dataclass(frozen=True)
class _Speaker:
    f0: float
    vtl: float  # formant scale (shorter vocal tract -> higher formants)
    rate: float
    range_scale: float
    expressive: float
    breath: float
    tilt: float
    level_db: float


def _speaker(seed: int, actor: int) -> _Speaker:
    rng = np.random.default_rng([seed, actor, 7919])
    male = actor % 2 == 1
    f0 = (110.0 if male else 210.0) * 2.0 ** (np.clip(rng.normal(0.0, 1.2), -2.5, 2.5) / 12)
    vtl = (1.0 if male else 1.17) * (1.0 + np.clip(rng.normal(0.0, 0.04), -0.08, 0.08))
    return _Speaker(
        f0=float(f0),
        vtl=float(vtl),
        rate=float(np.exp(rng.normal(0.0, 0.08))),
        range_scale=float(np.exp(rng.normal(0.0, 0.2))),
        expressive=float(rng.uniform(0.7, 1.3)),
        breath=float(rng.uniform(0.0, 0.05) + (0.0 if male else 0.03)),
        tilt=float(rng.normal(0.0, 0.06)),
        level_db=float(rng.normal(0.0, 1.5)),
    )


def _profile(emotion: str, k: float) -> _Prosody:
    """Neutral + k * (emotion - neutral) for every numeric field."""
    neu, emo = _PROFILES["neutral"], _PROFILES[emotion]
    values = {
        name: max(getattr(neu, name) + k * (getattr(emo, name) - getattr(neu, name)), low)
        for name, low in _FLOORS.items()
    }
    return _Prosody(**values, contour=emo.contour)


# F0 contour shapes in units of the F0 range, over normalised time u and time t (s).
_CONTOURS = {
    "decline": lambda u, t: 0.5 - u,
    "fall": lambda u, t: 0.6 - 1.2 * u**0.7,
    "low_fall": lambda u, t: 0.2 - 0.8 * u - 0.3 * np.sin(np.pi * u),
    "hat": lambda u, t: np.sin(np.pi * u) - 0.45,
    "rise": lambda u, t: 1.3 * u**2 - 0.5,
    "tremor": lambda u, t: 0.3 - 0.5 * u + 0.35 * np.sin(2 * np.pi * 6.0 * t),
}


@lru_cache(maxsize=32)
def _bandpass(low: float, high: float, sr: int) -> np.ndarray:
    nyq = sr / 2.0
    high = min(high, 0.95 * nyq)
    low = min(low, 0.5 * high)
    return signal.butter(2, [low, high], btype="bandpass", fs=sr, output="sos")


def _vocal_tract(x: np.ndarray, freqs: np.ndarray, bws: np.ndarray, sr: int, block: int):
    """Cascade of unity-DC-gain all-pole resonators whose coefficients change per block.

    ``freqs`` and ``bws`` are (n_blocks, n_formants).  Runs of blocks whose formants stay
    within 1 % are filtered in one go.  The state is carried over as past outputs
    (Klatt's difference equation), so coefficient updates do not click.
    """
    r = np.exp(-np.pi * bws / sr)
    a1 = -2.0 * r * np.cos(2.0 * np.pi * freqs / sr)
    a2 = r * r
    gain = 1.0 + a1 + a2
    cuts = [0]
    for b in range(1, freqs.shape[0]):
        if np.max(np.abs(freqs[b] / freqs[cuts[-1]] - 1.0)) > 0.01:
            cuts.append(b)
    sos = np.zeros((freqs.shape[1], 6))
    sos[:, 3] = 1.0
    y = np.empty_like(x)
    hist = np.zeros((freqs.shape[1], 2))  # y[n-1], y[n-2] of each section
    for b, end in zip(cuts, [*cuts[1:], freqs.shape[0]], strict=True):
        seg = x[b * block : end * block]
        sos[:, 0], sos[:, 4], sos[:, 5] = gain[b], a1[b], a2[b]
        zi = np.column_stack((-a1[b] * hist[:, 0] - a2[b] * hist[:, 1], -a2[b] * hist[:, 0]))
        out, zf = signal.sosfilt(sos, seg, zi=zi)
        y[b * block : b * block + out.size] = out
        hist[:, 0] = -zf[:, 1] / a2[b]  # invert the DF2T state back to past outputs
        hist[:, 1] = -(zf[:, 0] + a1[b] * hist[:, 0]) / a2[b]
    return y


def _timing(rng, sylls, pro: _Prosody, spk: _Speaker) -> tuple[np.ndarray, np.ndarray]:
    """Syllable start times and durations (s), with one phrase pause after syllable 2."""
    rate = pro.rate * spk.rate * np.exp(rng.normal(0.0, 0.07))
    durs = (1.0 / rate) * np.exp(rng.normal(0.0, 0.12, len(sylls)))
    durs[-1] *= 1.3  # phrase-final lengthening
    pause = rng.uniform(0.05, 0.12) * (4.3 / pro.rate)
    target = float(np.clip(durs.sum() + pause, *_SPEECH_S))
    durs *= (target - pause) / durs.sum()
    starts = np.concatenate(([0.0], np.cumsum(durs[:-1])))
    starts[2:] += pause
    return starts, durs


def _f0_track(rng, t, syl, pos, pro: _Prosody, spk: _Speaker) -> np.ndarray:
    """F0 in Hz: level + range * contour + accents on stressed syllables + slow drift."""
    level = pro.f0_st + rng.normal(0.0, 1.0)
    span = pro.range_st * spk.range_scale * np.exp(rng.normal(0.0, 0.2))
    accent = (_STRESS[syl] - 0.7) * 0.3 * span * np.sin(np.pi * pos)
    drift = np.interp(t, np.linspace(0, t[-1], 8), rng.normal(0.0, 0.4, 8))
    semitones = level + span * _CONTOURS[pro.contour](t / t[-1], t) + accent + drift
    return np.clip(spk.f0 * 2.0 ** (semitones / 12), 55.0, 600.0)


def _glottal_source(rng, f0, pro: _Prosody, spk: _Speaker, sr: int) -> tuple[np.ndarray, float]:
    """Rosenberg flow pulses with jitter and shimmer, aspiration noise and spectral tilt."""
    n = f0.size
    t = np.arange(n) / sr
    jitter = pro.jitter * np.exp(rng.normal(0.0, 0.2))
    shimmer = pro.shimmer * np.exp(rng.normal(0.0, 0.2))
    marks, tm = [], -rng.uniform(0.0, 1.0 / f0[0])
    jit = rng.normal(0.0, 1.0, int(t[-1] * 700) + 10)
    while tm < t[-1] + 0.02:
        marks.append(tm)
        tm += (1.0 / f0[min(max(int(tm * sr), 0), n - 1)]) * (1.0 + jitter * jit[len(marks)])
    marks = np.asarray([*marks, tm])
    k = np.searchsorted(marks, t, side="right") - 1
    phase = (t - marks[k]) / (marks[k + 1] - marks[k])
    oq = float(np.clip(pro.oq + rng.normal(0.0, 0.03), 0.3, 0.85))
    tp, tn = 0.65 * oq, 0.35 * oq
    flow = np.where(
        phase < tp,
        0.5 * (1.0 - np.cos(np.pi * phase / tp)),
        np.where(phase < oq, np.cos(0.5 * np.pi * (phase - tp) / tn), 0.0),
    )
    amps = np.exp(rng.normal(0.0, shimmer, marks.size))
    breath = (pro.breath + spk.breath) * float(np.exp(rng.normal(0.0, 0.25)))
    source = flow * amps[k] + 0.5 * breath * rng.normal(0.0, 1.0, n) * (0.3 + flow)
    tilt = float(np.clip(pro.tilt + spk.tilt + rng.normal(0.0, 0.05), 0.0, 0.9))
    return signal.lfilter([1.0 - tilt], [1.0, -tilt], source), breath


def _formant_tracks(sylls, starts, durs, n_blocks: int, block_s: float) -> np.ndarray:
    """(n_blocks, 3) F1-F3: consonant locus -> vowel transition, diphthong glide, smoothing."""
    tb = (np.arange(n_blocks) + 0.5) * block_s
    sb = np.clip(np.searchsorted(starts, tb, side="right") - 1, 0, len(sylls) - 1)
    pb = np.clip((tb - starts[sb]) / durs[sb], 0.0, 1.0)[:, None]
    v0 = np.array([_VOWELS[s[1]] for s in sylls])[sb]
    v1 = np.array([_VOWELS[s[2]] for s in sylls])[sb]
    vowel = v0 + (v1 - v0) * np.clip((pb - 0.4) / 0.5, 0.0, 1.0)
    f2_locus = np.array([_CONSONANTS[s[0]][0] if s[0] else np.nan for s in sylls])[sb]
    locus = vowel * np.array([0.6, 1.0, 1.0])
    locus[:, 1] = np.where(np.isnan(f2_locus), vowel[:, 1], f2_locus)
    fmt = locus + (vowel - locus) * np.clip(pb / 0.3, 0.0, 1.0)
    smooth = np.ones(5) / 5
    zi = np.outer(signal.lfilter_zi(smooth, 1), fmt[0])
    return signal.lfilter(smooth, [1.0], fmt, axis=0, zi=zi)[0]


def _synthesize(rng, statement: int, pro: _Prosody, spk: _Speaker, sr: int) -> np.ndarray:
    sylls = _STATEMENTS[statement]
    starts, durs = _timing(rng, sylls, pro, spk)
    n = round((starts[-1] + durs[-1]) * sr)
    t = np.arange(n) / sr
    syl = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(sylls) - 1)
    pos = np.clip((t - starts[syl]) / durs[syl], 0.0, 1.0)  # position inside the syllable
    source, breath = _glottal_source(rng, _f0_track(rng, t, syl, pos, pro, spk), pro, spk, sr)

    # Syllable envelope: consonant closure, vowel rise and decay; stress pattern.
    stress = _STRESS[syl] * np.exp(rng.normal(0.0, 0.1, len(sylls)))[syl]
    env = np.clip(np.minimum(pos / 0.25, (1.0 - pos) / 0.3), 0.0, 1.0)
    source = source * (0.02 + 0.98 * np.sin(0.5 * np.pi * env) ** 2) * stress

    block = max(1, int(sr * _BLOCK_S))
    fmt = _formant_tracks(sylls, starts, durs, -(-n // block), block / sr)
    fmt = fmt * spk.vtl * pro.formant
    freqs = np.hstack((fmt, np.outer(np.ones(len(fmt)), np.array([3500.0, 4500.0]) * spk.vtl)))
    bws = np.outer(np.ones(len(fmt)), _BANDWIDTHS * [1.0 + 3.0 * breath, 1, 1, 1, 1])
    keep = freqs.max(axis=0) < 0.45 * sr
    voice = _vocal_tract(source, freqs[:, keep], bws[:, keep], sr, block)
    voice = np.diff(voice, prepend=0.0)  # lip radiation

    # Consonant noise bursts at syllable onsets.
    ref = np.sqrt(np.mean(voice**2)) + 1e-12
    for start, (cons, _, _) in zip(starts, sylls, strict=True):
        if cons:
            _, band, length, lvl = _CONSONANTS[cons]
            i0, m = int(start * sr), int(length * sr)
            burst = signal.sosfilt(_bandpass(*band, sr), rng.normal(0.0, 1.0, m))
            burst *= np.hanning(m) if cons == "s" else np.exp(-np.arange(m) / (0.3 * m))
            burst *= lvl * ref / (np.sqrt(np.mean(burst**2)) + 1e-12)
            voice[i0 : i0 + m] += burst[: max(0, n - i0)]

    # Loudness: RMS relative to neutral speech at -26 dBFS, plus speaker/clip variation.
    level_db = -26.0 + pro.energy_db + spk.level_db + rng.normal(0.0, 1.5)
    return voice * (10.0 ** (level_db / 20.0) / ref)


def _clip(seed: int, actor: int, emotion: str, intensity: int, statement: int, sr: int):
    rng = np.random.default_rng([seed, actor, _EMOTION_CODES[emotion], intensity, statement])
    k = 1.0 if intensity == 1 else _STRONG
    spk = _speaker(seed, actor)
    k *= spk.expressive * np.exp(rng.normal(0.0, 0.15))
    speech = _synthesize(rng, statement, _profile(emotion, k), spk, sr)
    pad = int(_PAD_S * sr)
    y = np.concatenate((np.zeros(pad), speech, np.zeros(pad)))
    floor = 10.0 ** (rng.uniform(-62.0, -55.0) / 20.0)
    y += floor * signal.lfilter([1.0], [1.0, -0.6], rng.normal(0.0, 0.8, y.size))
    return 0.98 * np.tanh(y / 0.98)  # soft limiter: peaks stay below 1


def generate_demo_corpus(
    out_dir: Path | str,
    *,
    n_speakers: int = 8,
    sample_rate: int = 16000,
    seed: int = 0,
) -> list[Path]:
    """Write a synthetic RAVDESS-style emotional-speech corpus.

    Parameters
    ----------
    out_dir : Path or str
        Destination; clips go to ``out_dir/Actor_AA/03-01-EE-II-SS-01-AA.wav``.
    n_speakers : int
        Number of speakers (1-24); odd numbers are male, even numbers female.
    sample_rate : int
        Sample rate in Hz (at least 8000).
    seed : int
        Non-negative seed; the same arguments always give byte-identical files.

    Returns
    -------
    list of Path
        The written WAV files, 30 per speaker, in speaker/emotion/intensity/statement order.

    Raises
    ------
    AudioError
        If an argument is out of range.
    """
    if not 1 <= n_speakers <= 24:
        raise AudioError(f"n_speakers must be between 1 and 24 (like RAVDESS), got {n_speakers}")
    if sample_rate < 8000:
        raise AudioError(f"sample_rate must be at least 8000 Hz, got {sample_rate}")
    if seed < 0:
        raise AudioError(f"seed must be non-negative, got {seed}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for actor in range(1, n_speakers + 1):
        actor_dir = out / f"Actor_{actor:02d}"
        actor_dir.mkdir(exist_ok=True)
        for emotion, code in _EMOTION_CODES.items():
            for intensity in (1,) if emotion == "neutral" else (1, 2):
                for statement in (1, 2):
                    y = _clip(seed, actor, emotion, intensity, statement, sample_rate)
                    name = f"03-01-{code:02d}-{intensity:02d}-{statement:02d}-01-{actor:02d}"
                    path = actor_dir / f"{name}.wav"
                    sf.write(path, y.astype(np.float32), sample_rate, subtype="PCM_16")
                    paths.append(path)
    meta = {
        "corpus": "synthetic_demo",
        "synthetic": True,
        "generator": "ser_features.demo_corpus",
        "seed": seed,
        "description": _DESCRIPTION,
    }
    (out / "CORPUS.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    readme = (
        f"Synthetic demo corpus from ser_features.demo_corpus (seed {seed}, {n_speakers} "
        f"speakers, {sample_rate} Hz): synthetic source-filter speech, not real recordings. "
        "Vowel-like syllables whose pitch, tempo, loudness and voice quality follow the eight "
        "RAVDESS emotions, named like RAVDESS files. Use for demos and tests only.\n"
    )
    (out / "README.txt").write_text(readme, encoding="utf-8")
    return paths
