"""The voice-activity detector: Silero's sequence model on ONNX Runtime, checked against the
package's TorchScript model (the reference implementation) on real clips."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf
import torch
from silero_vad import load_silero_vad

from ser_features.audio import resample
from ser_features.speech_activity import (
    VAD_RATE,
    WINDOW,
    detector_input,
    speech_probability,
    speech_spans,
    speech_windows,
)


@pytest.fixture(scope="module")
def clips(shared_data) -> list[np.ndarray]:
    """Real clips of four corpora, as recorded, at a whisper's level and under noise."""
    paths = [
        *sorted((shared_data / "ravdess").rglob("*.flac"))[::97],
        *sorted((shared_data / "cremad").glob("*.flac"))[::409],
        *sorted((shared_data / "tess_sample").rglob("*.wav"))[::17],
        *sorted((shared_data / "emodb_sample").rglob("*.wav"))[::11],
    ]
    assert len(paths) >= 30
    noise = np.random.default_rng(0)
    recorded = []
    for path in paths:
        samples, rate = sf.read(path, dtype="float32", always_2d=True)
        recorded.append(resample(samples.mean(axis=1), rate, 16000))
    quiet = [samples * np.float32(0.01) for samples in recorded[::3]]
    noisy = [
        s + np.float32(0.02) * noise.standard_normal(len(s), dtype=np.float32)
        for s in recorded[1::3]
    ]
    return recorded + quiet + noisy


@pytest.fixture(scope="module")
def torchscript_model():
    """The package's TorchScript model, the reference implementation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_silero_vad()


def torchscript_probability(model, samples: np.ndarray) -> np.ndarray:
    """``model`` on what :func:`speech_probability` hears."""
    audio = detector_input(samples, 16000)
    with torch.inference_mode():
        probability = model.audio_forward(torch.from_numpy(audio), VAD_RATE)
    return probability.numpy()[0, : int(np.ceil(len(audio) / WINDOW))]


def test_the_detector_agrees_with_the_torchscript_model_on_real_clips(clips, torchscript_model):
    for samples in clips:
        ours = speech_probability(samples, 16000)
        reference = torchscript_probability(torchscript_model, samples)
        assert ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, atol=1e-4)
        assert np.array_equal(speech_windows(ours), speech_windows(reference))


def test_the_detector_is_safe_to_call_from_several_threads(clips):
    alone = [speech_spans(samples, 16000) for samples in clips]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda samples: speech_spans(samples, 16000), clips))
    assert together == alone
    assert sum(len(spans) > 0 for spans in alone) >= len(clips) // 2
