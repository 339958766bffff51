"""Shared spectral intermediates: one STFT and one mel spectrogram per clip.

:class:`SpectralAnalysis` computes each intermediate lazily and at most once, so a feature
set that needs MFCC, mel bands and chroma pays for a single STFT.  Filter banks depend only
on their parameters and are built once per process.

Examples
--------
>>> import numpy as np
>>> analysis = SpectralAnalysis(np.random.default_rng(0).normal(size=16000), 16000)
>>> analysis.mfcc(n_mfcc=13).shape[0], analysis.chroma().shape[0]
(13, 12)
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import Literal

import librosa
import numpy as np
import scipy.fft
import scipy.signal
import scipy.sparse


@lru_cache(maxsize=32)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> scipy.sparse.csr_matrix:
    """librosa's Slaney-normalised mel filter bank, built once per parameter set.

    Stored sparse: each FFT bin feeds at most two triangles, so the product with a
    spectrogram costs a small fraction of the dense one.
    """
    return scipy.sparse.csr_matrix(librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels))


@lru_cache(maxsize=8)
def hann_window(n_fft: int) -> np.ndarray:
    """The periodic Hann window librosa's STFT uses."""
    return scipy.signal.get_window("hann", n_fft, fftbins=True)


@lru_cache(maxsize=256)
def chroma_filterbank(sample_rate: int, n_fft: int, tuning: float) -> np.ndarray:
    """librosa's 12-bin chroma filter bank for a tuning offset (in fractions of a bin)."""
    return librosa.filters.chroma(sr=sample_rate, n_fft=n_fft, tuning=tuning, n_chroma=12)


def estimate_tuning_in_band(
    magnitude: np.ndarray,
    sample_rate: int,
    n_fft: int,
    *,
    fmin: float = 150.0,
    fmax: float = 4000.0,
    threshold: float = 0.1,
) -> float:
    """``librosa.estimate_tuning(S=magnitude)``, computing only the bins it keeps.

    librosa's ``piptrack`` interpolates peaks over the whole spectrum and then discards those
    outside ``[fmin, fmax)``; here only that band (plus its two neighbours) is processed.
    The per-frame reference level still uses the whole spectrum, so the result is the same.
    """
    freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
    band = np.flatnonzero((freqs >= max(fmin, 0.0)) & (freqs < min(fmax, sample_rate / 2)))
    first, last = max(int(band[0]), 1), min(int(band[-1]), magnitude.shape[0] - 2)
    window = magnitude[first - 1 : last + 2]
    left, centre, right = window[:-2], window[1:-1], window[2:]
    above = window * (window > threshold * magnitude.max(axis=0))
    peaks = (above[1:-1] > above[:-2]) & (above[1:-1] >= above[2:])
    # The same arithmetic (and float widths) as librosa's numba stencil and np.gradient.
    curvature = (right + left).astype(np.float64) - 2 * centre.astype(np.float64)
    half_step = (right - left).astype(np.float64) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(
            np.abs(half_step) >= np.abs(curvature), 0.0, -half_step / curvature
        ).astype(magnitude.dtype)
    slope = (right - left) / 2
    rows, cols = np.nonzero(peaks)
    pitch = ((rows + first + shift[rows, cols]) * float(sample_rate) / n_fft).astype(
        magnitude.dtype
    )
    mag = centre[rows, cols] + 0.5 * slope[rows, cols] * shift[rows, cols]
    voiced = pitch > 0
    level = np.median(mag[voiced]) if voiced.any() else 0.0
    return float(librosa.pitch_tuning(pitch[(mag >= level) & voiced], bins_per_octave=12))


class SpectralAnalysis:
    """Lazily computed, cached spectral views of one mono clip.

    Parameters
    ----------
    samples : mono float signal.
    sample_rate : its rate in Hz.
    n_fft, hop_length : STFT frame and hop in samples (librosa's centred Hann STFT).
    db_reference : ``"unit"`` gives log-mel in dB relative to a power of 1.0 (librosa's
        default), ``"peak"`` relative to the clip's loudest mel bin, which a change of
        recording gain does not move.
    top_db : dynamic range kept below the loudest bin; quieter bins are raised to it.
    """

    def __init__(
        self,
        samples: np.ndarray,
        sample_rate: int,
        *,
        n_fft: int = 2048,
        hop_length: int = 512,
        db_reference: Literal["unit", "peak"] = "unit",
        top_db: float = 80.0,
    ) -> None:
        self.samples = np.asarray(samples, dtype=np.float32)
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.db_reference = db_reference
        self.top_db = top_db
        self._mel: dict[int, np.ndarray] = {}
        self._log_mel: dict[int, np.ndarray] = {}

    @cached_property
    def magnitude(self) -> np.ndarray:
        """``|STFT|``, shape ``(1 + n_fft // 2, frames)``: librosa's centred, zero-padded STFT
        (``librosa.stft`` defaults), computed in one batched real FFT."""
        padded = np.pad(self.samples, self.n_fft // 2)
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft)[:: self.hop_length]
        # Like librosa: transform in float64, round the spectrum to complex64.
        spectrum = scipy.fft.rfft(frames * hann_window(self.n_fft), axis=1)
        return np.abs(spectrum.astype(np.complex64)).T

    @cached_property
    def power(self) -> np.ndarray:
        """``|STFT|**2``."""
        return self.magnitude**2

    def mel_power(self, n_mels: int = 128) -> np.ndarray:
        """Mel-band power spectrogram from the shared STFT."""
        if n_mels not in self._mel:
            bank = mel_filterbank(self.sample_rate, self.n_fft, n_mels)
            self._mel[n_mels] = np.asarray(bank @ self.power)
        return self._mel[n_mels]

    def log_mel(self, n_mels: int = 128) -> np.ndarray:
        """Mel power in dB, as librosa's ``power_to_db`` (reference and range as configured)."""
        if n_mels not in self._log_mel:
            ref = np.max if self.db_reference == "peak" else 1.0
            self._log_mel[n_mels] = librosa.power_to_db(
                self.mel_power(n_mels), ref=ref, top_db=self.top_db
            )
        return self._log_mel[n_mels]

    def mfcc(self, n_mfcc: int = 40, n_mels: int = 128) -> np.ndarray:
        """MFCC: orthonormal DCT-II of the log-mel spectrogram (librosa's definition)."""
        return scipy.fft.dct(self.log_mel(n_mels), axis=0, type=2, norm="ortho")[:n_mfcc]

    @cached_property
    def tuning(self) -> float:
        """Tuning deviation estimated from the magnitude spectrum, as ``chroma_stft`` does."""
        return estimate_tuning_in_band(self.magnitude, self.sample_rate, self.n_fft)

    def chroma(self, *, estimate_tuning: bool = True) -> np.ndarray:
        """12-bin chroma of the magnitude spectrum, each frame scaled to a maximum of 1."""
        tuning = self.tuning if estimate_tuning else 0.0
        bank = chroma_filterbank(self.sample_rate, self.n_fft, tuning)
        return librosa.util.normalize(bank @ self.magnitude, norm=np.inf, axis=-2)

    @cached_property
    def frame_rms(self) -> np.ndarray:
        """Frame RMS of the signal on the STFT's centred frames (one value per STFT frame)."""
        return librosa.feature.rms(
            y=self.samples, frame_length=self.n_fft, hop_length=self.hop_length
        )[0]
