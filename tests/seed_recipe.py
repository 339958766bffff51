"""The published projects' own ``seed180`` code: the reference ``seed180`` is checked and
benchmarked against (``tests/test_feature_sets.py``, ``benchmarks/extract_speed.py``)."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import soundfile as sf


def published_recipe(path: str | Path) -> np.ndarray:
    """The published projects' own code: three separate STFTs through librosa's calls."""
    samples, rate = sf.read(path, dtype="float32")
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    stft = np.abs(librosa.stft(samples))
    mfcc = np.mean(librosa.feature.mfcc(y=samples, sr=rate, n_mfcc=40).T, axis=0)
    chroma = np.mean(librosa.feature.chroma_stft(S=stft, sr=rate).T, axis=0)
    mel = np.mean(librosa.feature.melspectrogram(y=samples, sr=rate).T, axis=0)
    return np.hstack([mfcc, chroma, mel])
