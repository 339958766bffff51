"""Where the speech is: voice activity detection with Silero VAD (its model ships inside the
``silero-vad`` package, so nothing is downloaded).

The detector gives a speech probability for every 32 ms of audio at 16 kHz. Unlike a level
threshold, it tells quiet speech from loud noise: a sad murmur under a fan is speech, a pause
filled with babble or hiss is not. Feature sets use it to describe speech frames only; the
long-recording segmenter uses it to split where speech stops, not where it gets quiet.

Examples
--------
>>> import numpy as np
>>> silence = np.zeros(16000, dtype="float32")
>>> speech_spans(silence, 16000)
[]
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from ser_features.audio import resample

#: The detector's rate and its window: 512 samples, 32 ms.
VAD_RATE = 16000
WINDOW = 512
WINDOW_S = WINDOW / VAD_RATE
#: Speech starts above ``THRESHOLD`` and ends below ``THRESHOLD - 0.15`` (Silero's hysteresis).
THRESHOLD = 0.5

_lock = threading.Lock()


@functools.cache
def _detector():
    import torch
    from silero_vad import load_silero_vad

    torch.set_grad_enabled(False)
    return load_silero_vad()


def speech_probability(samples: np.ndarray, rate: int) -> np.ndarray:
    """The probability of speech in each 32 ms window of ``samples`` (mono, any rate)."""
    import torch

    audio = resample(np.asarray(samples, dtype=np.float32), rate, VAD_RATE)
    if len(audio) < WINDOW:
        return np.zeros(0, dtype=np.float32)
    with _lock, torch.inference_mode():  # the detector keeps state between its windows
        probability = _detector().audio_forward(torch.from_numpy(audio), VAD_RATE)
    return probability.numpy()[0, : int(np.ceil(len(audio) / WINDOW))].astype(np.float32)


def speech_windows(probability: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Which windows are speech: above ``threshold`` to start, down to ``threshold - 0.15``."""
    speaking = np.zeros(len(probability), dtype=bool)
    active = False
    for index, p in enumerate(probability):
        active = p >= threshold or (active and p >= threshold - 0.15)
        speaking[index] = active
    return speaking


def speech_spans(
    samples: np.ndarray,
    rate: int,
    *,
    min_silence_s: float = 0.3,
    min_speech_s: float = 0.25,
    pad_s: float = 0.1,
    probability: np.ndarray | None = None,
) -> list[tuple[float, float]]:
    """Start and end times (s) of the speech in ``samples``, however quiet.

    Runs of speech closer than ``min_silence_s`` are joined, runs shorter than
    ``min_speech_s`` dropped, and each span widened by ``pad_s`` on both sides (within the
    recording). ``probability`` may be given when already computed.
    """
    if probability is None:
        probability = speech_probability(samples, rate)
    speaking = speech_windows(probability)
    duration = len(samples) / rate
    spans: list[list[float]] = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], speaking.astype(np.int8), [0]])))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        begin, finish = start * WINDOW_S, min(end * WINDOW_S, duration)
        if spans and begin - spans[-1][1] < min_silence_s:
            spans[-1][1] = finish
        else:
            spans.append([begin, finish])
    return [
        (float(max(0.0, begin - pad_s)), float(min(duration, finish + pad_s)))
        for begin, finish in spans
        if finish - begin >= min_speech_s
    ]


def speech_duration(probability: np.ndarray) -> float:
    """Seconds of speech in windows with these probabilities."""
    return float(speech_windows(probability).sum() * WINDOW_S)
