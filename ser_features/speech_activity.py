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
import warnings

import numpy as np

from ser_features.audio import resample

#: The detector's rate and its window: 512 samples, 32 ms.
VAD_RATE = 16000
WINDOW = 512
WINDOW_S = WINDOW / VAD_RATE
#: Speech starts above ``THRESHOLD`` and ends below ``THRESHOLD - 0.15`` (Silero's hysteresis).
THRESHOLD = 0.5
#: The detector hears a recording brought to this active level (dBFS): it misses quiet speech
#: otherwise (at -50 dBFS a tenth of the speech windows of real clips went unheard).
DETECTOR_LEVEL_DBFS = -26.0
#: Frames for the active speech level: 20 ms, and "active" within this many dB of the loudest.
ACTIVE_FRAME_S = 0.02
ACTIVE_RANGE_DB = 30.0


@functools.cache
def _detector():
    """Silero's sequence model on ONNX Runtime: the same network as its TorchScript model,
    run as one call per block of up to 512 windows instead of one Python call per window (a
    4 s clip: 7 ms against 38 ms, measured here; probabilities within 4e-5 of the
    TorchScript model's on real clips). Stateless between calls, so callers need no lock."""
    import torch

    threads = torch.get_num_threads()
    from silero_vad import load_silero_vad  # its import sets torch to one thread, process-wide

    torch.set_num_threads(threads)  # the process's other models (an encoder) keep theirs
    with warnings.catch_warnings():  # the package's own deprecated loading calls
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_silero_vad(sequence=True)


def active_level(samples: np.ndarray, rate: int) -> float:
    """Mean power of the frames within :data:`ACTIVE_RANGE_DB` of the loudest 20 ms frame."""
    frame = max(1, int(ACTIVE_FRAME_S * rate))
    n = len(samples) // frame
    if n == 0:
        return float(np.mean(np.square(samples, dtype=np.float64))) if len(samples) else 0.0
    power = np.mean(np.square(samples[: n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    loud = power[power >= power.max() * 10 ** (-ACTIVE_RANGE_DB / 10)]
    return float(loud.mean())


def detector_input(samples: np.ndarray, rate: int) -> np.ndarray:
    """What the detector hears: ``samples`` (mono, any rate) at :data:`VAD_RATE`, brought to
    an active level of :data:`DETECTOR_LEVEL_DBFS` whatever the recording's level."""
    audio = resample(np.asarray(samples, dtype=np.float32), rate, VAD_RATE)
    level = active_level(audio, VAD_RATE)
    if level > 0:
        audio = audio * np.float32(10 ** (DETECTOR_LEVEL_DBFS / 20) / np.sqrt(level))
        peak = float(np.max(np.abs(audio)))
        audio = audio * np.float32(0.99 / peak) if peak > 0.99 else audio
    return audio


def speech_probability(samples: np.ndarray, rate: int) -> np.ndarray:
    """The probability of speech in each 32 ms window of ``samples`` (mono, any rate), heard
    as :func:`detector_input` says."""
    audio = detector_input(samples, rate)
    if len(audio) < WINDOW:
        return np.zeros(0, dtype=np.float32)
    probability = _detector().audio_forward(audio, VAD_RATE)
    return probability[: int(np.ceil(len(audio) / WINDOW))].astype(np.float32)


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
