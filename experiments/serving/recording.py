"""A served row's recording: decoded as received, heard, and cut into the pieces it is judged by.

The recording is decoded once at its own rate and the voice activity detector runs once over
it; what it lets a listener hear (:func:`~ser_features.quality.recording_quality`) is measured
on it before anything is trimmed or levelled. A short recording is judged whole; a long one
piece by piece, split where its speech stops (:func:`~ser_features.segments.speech_segments`).
Every piece is brought to the feature set's form on its own, as every training clip was, and
its times are seconds into the recording as received.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import replace
from typing import Any

import numpy as np
import soundfile as sf

from ser_features.audio import Clip, LoadOptions, load_audio, prepare, resample
from ser_features.errors import AudioError
from ser_features.quality import TELEPHONE_RATE, recording_quality
from ser_features.segments import speech_segments
from ser_features.speech_activity import VAD_RATE, WINDOW_S, speech_probability

Span = tuple[float, float]


def as_recorded(raw: bytes, *, max_duration_s: float | None = None) -> Clip:
    """``raw`` (the bytes of an audio file) decoded and validated at its own rate, mono, with
    nothing trimmed or levelled. Raises :class:`AudioError` naming what is wrong."""
    try:
        rate = sf.info(io.BytesIO(raw)).samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError):
        rate = None  # not audio: load_audio says why
    options = LoadOptions(sample_rate=rate) if rate else LoadOptions()
    return load_audio(raw, options=options, max_duration_s=max_duration_s)


def hear(
    recorded: Clip, *, model_telephone_band: bool = False
) -> tuple[np.ndarray, dict[str, Any]]:
    """The detector's speech probability per 32 ms window of ``recorded``, and its quality
    facts (:func:`~ser_features.quality.recording_quality`) for a model that learnt from
    telephone-band recordings or not."""
    probability = speech_probability(recorded.samples, recorded.sample_rate)
    facts = recording_quality(
        recorded.samples,
        recorded.sample_rate,
        probability,
        model_telephone_band=model_telephone_band,
    )
    return probability, facts


def through_telephone_band(recorded: Clip) -> Clip:
    """``recorded`` at :data:`~ser_features.quality.TELEPHONE_RATE` when it is wider: what a
    model that learnt from telephone-band recordings was taught to hear."""
    if recorded.sample_rate <= TELEPHONE_RATE:
        return recorded
    samples = resample(recorded.samples, recorded.sample_rate, TELEPHONE_RATE)
    return replace(recorded, samples=samples, sample_rate=TELEPHONE_RATE)


def judged_pieces(
    recorded: Clip,
    probability: np.ndarray,
    load: LoadOptions,
    *,
    max_segment_s: float,
) -> tuple[list[Span], list[Clip]]:
    """The spans of ``recorded`` judged apart and their clips in the form ``load`` gives.

    Up to ``max_segment_s`` the recording is one piece; longer, its speech segments are (equal
    parts of the whole when the detector hears none), their ends on the detector's 32 ms
    windows so that its speech probability (``probability``, of the whole recording) serves
    each piece too. A segment that cannot be prepared (too short once trimmed) is left out;
    :class:`AudioError` when nothing is left.
    """
    known = probability if load.sample_rate == VAD_RATE else None  # else heard at load's rate
    if recorded.duration_s <= max_segment_s:
        return [(0.0, recorded.duration_s)], [prepare(recorded, load, speech_probability=known)]
    spans = speech_segments(
        recorded.samples, recorded.sample_rate, max_segment_s=max_segment_s, probability=probability
    ) or equal_parts(recorded.duration_s, max_segment_s)
    kept, pieces, problems = [], [], []
    for first, last in _on_windows(spans, len(probability)):
        try:
            piece = cut(recorded, first * WINDOW_S, last * WINDOW_S)
            heard = None if known is None else known[first:last]
            pieces.append(prepare(piece, load, speech_probability=heard))
            kept.append((first * WINDOW_S, min(last * WINDOW_S, recorded.duration_s)))
        except AudioError as exc:
            problems.append(exc)
    if not pieces:
        raise problems[0]
    return kept, pieces


def _on_windows(spans: list[Span], windows: int) -> list[tuple[int, int]]:
    """``spans`` as first and last+1 detector window, each end on the nearest window edge."""
    edges = [(round(start / WINDOW_S), min(round(end / WINDOW_S), windows)) for start, end in spans]
    return [(first, last) for first, last in edges if last > first]


def equal_parts(duration_s: float, max_segment_s: float) -> list[Span]:
    """``[0, duration_s]`` cut into equal parts no longer than ``max_segment_s``."""
    edges = np.linspace(0.0, duration_s, int(np.ceil(duration_s / max_segment_s)) + 1)
    return [(float(a), float(b)) for a, b in itertools.pairwise(edges)]


def cut(clip: Clip, start: float, end: float) -> Clip:
    """The part of ``clip`` between ``start`` and ``end`` seconds."""
    first, last = int(start * clip.sample_rate), int(end * clip.sample_rate)
    return replace(clip, samples=clip.samples[first:last])
