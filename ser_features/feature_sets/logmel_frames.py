"""``logmel_frames``: the clip's log-mel spectrogram itself, for frame-level networks.

The pipeline stores one row per clip with a fixed set of numeric columns, so the frames are
laid out as a fixed grid: :data:`N_MELS` log-mel bands x :data:`MAX_FRAMES` frames of
:data:`FRAME_S` (40 ms), i.e. up to 8.0 s, the longest piece serving sends to a model
(longer recordings are cut at pauses into segments of at most 8 s first). Columns are
``lm_f{frame:03d}_b{band:02d}`` (8000 of them) plus ``lm_n_frames``, the number of real
frames; the frames after it hold :data:`PAD_VALUE` and must be masked by the model (see
:mod:`experiments.families.frame_nets`).

How a frame is computed: one STFT with a 32 ms Hann window (``n_fft=512``) and a 10 ms hop
via the shared :class:`~ser_features.spectral.SpectralAnalysis`, 40 Slaney mel bands
(0-8 kHz), then the mel *power* of four consecutive 10 ms frames is averaged into one 40 ms
frame and converted to dB (``power_to_db``: ref 1.0, 80 dB below the clip's loudest cell).
Pooling four 10 ms frames rather than taking a 40 ms hop keeps every sample in some frame
(a 32 ms window on a 40 ms hop would skip 8 ms of each step, bursts and plosives included)
and smooths the frame-to-frame noise; 40 ms x 200 frames keeps the table at 8001 columns,
where a 10 ms grid would need 32,000. A clip longer than 8 s keeps its central 200 frames.

Normalisation: only the log compression (and its 80 dB floor) happens here; the values are
absolute dB, so the overall level and spectral tilt are still in the table. Per-clip
mean subtraction per band (cepstral-mean-style normalisation across recording channels)
and the per-band standardisation fitted on training clips are done by the network, on the
real frames only.

Describing a 4 s clip costs about 2-3 ms (one 512-point STFT of 400 frames).
"""

from __future__ import annotations

import librosa
import numpy as np

from ser_features.audio import Clip, LoadOptions
from ser_features.feature_sets.spec import FeatureSpec
from ser_features.spectral import SpectralAnalysis

#: Prefix of every column of this set.
PREFIX = "lm"
SAMPLE_RATE = 16000
N_FFT = 512  # 32 ms Hann window
HOP = 160  # 10 ms STFT hop
POOL = 4  # 10 ms frames averaged into one stored frame
FRAME_S = HOP * POOL / SAMPLE_RATE  # 40 ms
N_MELS = 40
MAX_FRAMES = 200  # 8.0 s
#: Value of the cells after the last real frame (the model masks them by ``lm_n_frames``).
PAD_VALUE = 0.0
#: Column holding the number of real frames (1..MAX_FRAMES).
N_FRAMES_COLUMN = f"{PREFIX}_n_frames"
#: Frame columns in storage order: frame-major, then band.
FRAME_COLUMNS: tuple[str, ...] = tuple(
    f"{PREFIX}_f{frame:03d}_b{band:02d}" for frame in range(MAX_FRAMES) for band in range(N_MELS)
)
COLUMNS: tuple[str, ...] = (*FRAME_COLUMNS, N_FRAMES_COLUMN)


def logmel_frames(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Log-mel frames of a signal, shape ``(n_frames, N_MELS)`` (not padded or cut)."""
    analysis = SpectralAnalysis(samples, sample_rate, n_fft=N_FFT, hop_length=HOP)
    power = analysis.mel_power(N_MELS)  # (N_MELS, n_10ms)
    n_short = power.shape[1]
    n_frames = -(-n_short // POOL)
    padded = np.zeros((N_MELS, n_frames * POOL), dtype=np.float64)
    padded[:, :n_short] = power
    counts = np.full(n_frames, float(POOL))
    counts[-1] = n_short - (n_frames - 1) * POOL
    pooled = padded.reshape(N_MELS, n_frames, POOL).sum(axis=2) / counts
    return librosa.power_to_db(pooled, ref=1.0, amin=1e-10, top_db=80.0).T


def describe_logmel_frames(clip: Clip) -> dict[str, float]:
    """The padded frame grid and the real-frame count of one clip: 8001 columns."""
    frames = logmel_frames(clip.samples, clip.sample_rate)
    if len(frames) > MAX_FRAMES:
        start = (len(frames) - MAX_FRAMES) // 2
        frames = frames[start : start + MAX_FRAMES]
    grid = np.full((MAX_FRAMES, N_MELS), PAD_VALUE, dtype=np.float64)
    grid[: len(frames)] = frames
    out = dict(zip(FRAME_COLUMNS, grid.ravel().tolist(), strict=True))
    out[N_FRAMES_COLUMN] = float(len(frames))
    return out


LOGMEL_FRAMES = FeatureSpec(
    name="logmel_frames",
    version=1,
    description=(
        "40 log-mel bands x up to 200 frames of 40 ms (8 s, centre kept), padded, plus the "
        "real-frame count; for frame-level networks"
    ),
    load=LoadOptions(sample_rate=SAMPLE_RATE, trim_top_db=40.0),
    describer=describe_logmel_frames,
)
