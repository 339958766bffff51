"""Splitting long recordings into speech segments where the speech stops.

A call or a session holds many utterances; emotion is judged per segment, and a recording's
overall emotion is the duration-weighted mean of its segments' probabilities.

Segments come from a voice activity detector (:mod:`~ser_features.speech_activity`), not from
a level threshold: a sad murmur 40 dB under a shout is still speech and stays in the
timeline, while a pause filled with hiss or hum is not. A recording in which the detector
hears no speech gives no segment at all.

Examples
--------
>>> import numpy as np
>>> speech_segments(np.zeros(16000 * 3, dtype="float32"), 16000)
[]
>>> _join_short([(0.0, 2.0), (2.4, 2.6), (5.0, 7.0)], min_segment_s=0.5, max_gap_s=1.0)
[(0.0, 2.6), (5.0, 7.0)]
"""

from __future__ import annotations

import itertools

import numpy as np

from ser_features.speech_activity import WINDOW_S, speech_probability, speech_spans, speech_windows

#: A segment shorter than ``min_segment_s`` joins its nearer neighbour when the pause between
#: them is shorter than this; further away it is kept on its own.
MAX_JOIN_GAP_S = 1.0
#: Speech shorter than this is taken for a click or a breath, not for an utterance.
MIN_SPEECH_S = 0.1
#: Speech kept on either side of what the detector marks (its windows start late and end early).
PAD_S = 0.1
#: A stretch heard again is raised towards peaks at this level, by at most :data:`MAX_RAISE_DB`.
HEARING_PEAK_DBFS = -6.0
MAX_RAISE_DB = 20.0
#: Stretches the detector called non-speech for at least this long are heard again afresh.
RESCAN_S = 0.5
#: How far (s) the loudest sound sets the gain of a stretch raised locally.
LOCAL_S = 0.5
#: A stretch is heard again only when some window of it, away from its :data:`EDGE_WINDOWS`
#: first and last (the detector starts late and ends early: the speech beside it is loud
#: there), is :data:`ABOVE_FLOOR_DB` over the noise floor (the 10th percentile of window
#: levels) and louder than :data:`AUDIBLE_DBFS`.
ABOVE_FLOOR_DB = 10.0
AUDIBLE_DBFS = -70.0
EDGE_WINDOWS = 5
#: Windows of silence the detector hears before a stretch, so that it starts warm.
RESCAN_LEAD = 8


def speech_segments(
    samples: np.ndarray,
    sample_rate: int,
    *,
    min_pause_s: float = 0.3,
    min_segment_s: float = 0.5,
    max_segment_s: float = 8.0,
    probability: np.ndarray | None = None,
) -> list[tuple[float, float]]:
    """Start and end times (s) of the speech in ``samples``, split at pauses of at least
    ``min_pause_s``.

    A span shorter than ``min_segment_s`` is joined to its nearer neighbour when the pause
    between them is under :data:`MAX_JOIN_GAP_S`, else kept as it is (quiet or short speech
    stays in the timeline); a span longer than ``max_segment_s`` is cut into equal parts no
    longer than that. ``probability`` is the detector's output for ``samples`` when already
    computed. Returns ``[]`` when the detector hears no speech.
    """
    if probability is None:
        probability = speech_probability(samples, sample_rate)
    spans = speech_spans(
        samples,
        sample_rate,
        min_silence_s=min_pause_s,
        min_speech_s=MIN_SPEECH_S,
        pad_s=PAD_S,
        probability=rescan_pauses(samples, sample_rate, probability),
    )
    joined = _join_short(spans, min_segment_s=min_segment_s, max_gap_s=MAX_JOIN_GAP_S)
    return [part for span in joined for part in _cut_long(span, max_segment_s)]


def rescan_pauses(samples: np.ndarray, sample_rate: int, probability: np.ndarray) -> np.ndarray:
    """``probability`` raised where the detector, hearing again from a fresh state and
    :func:`raised_locally` every stretch of at least :data:`RESCAN_S` it called non-speech
    (that holds sound :data:`ABOVE_FLOOR_DB` over the recording's noise floor), hears more
    speech.

    The detector carries a memory through a recording and hears quiet speech less well than
    loud: 0.7 s after an angry CREMA-D clip it gives a quiet sad clip of the same speaker
    (-40 dBFS) a speech probability of 0.1, alone 0.3-0.7, alone and 10 dB louder 0.8-0.98.
    Heard again from a fresh state and at a raised level, such murmurs stay in the timeline.
    """
    probability = probability.copy()
    quiet = ~speech_windows(probability)
    loudness = _window_db(samples, sample_rate, len(probability))
    floor = np.percentile(loudness, 10) if len(loudness) else 0.0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    lead = np.zeros(round(RESCAN_LEAD * WINDOW_S * sample_rate), dtype=np.float32)
    for first, last in zip(edges[::2], edges[1::2], strict=True):
        if not _worth_hearing(loudness[first:last], floor):
            continue
        start, end = (round(w * WINDOW_S * sample_rate) for w in (first, last))
        stretch = raised_locally(samples[start:end], sample_rate)
        heard = speech_probability(np.concatenate([lead, stretch]), sample_rate)
        again = heard[RESCAN_LEAD : RESCAN_LEAD + last - first]
        span = slice(first, first + len(again))
        probability[span] = np.maximum(probability[span], again)
    return probability


def _worth_hearing(loudness: np.ndarray, floor: float) -> bool:
    """Whether a stretch with these window levels (dB) may hold an utterance: long enough,
    and with sound over the noise floor away from its edges."""
    inside = loudness[EDGE_WINDOWS : len(loudness) - EDGE_WINDOWS]
    long_enough = len(loudness) * WINDOW_S >= RESCAN_S
    loudest = inside.max(initial=-np.inf)
    return long_enough and loudest >= max(floor + ABOVE_FLOOR_DB, AUDIBLE_DBFS)


def _window_db(samples: np.ndarray, sample_rate: int, count: int) -> np.ndarray:
    """The level (dB) of each of the ``count`` 32 ms detector windows of ``samples``."""
    edges = np.minimum(
        np.round(np.arange(count + 1) * WINDOW_S * sample_rate).astype(int), len(samples)
    )
    energy = np.concatenate([[0.0], np.cumsum(np.square(samples, dtype=np.float64))])
    sizes = np.maximum(np.diff(edges), 1)
    return 10 * np.log10(np.maximum((energy[edges[1:]] - energy[edges[:-1]]) / sizes, 1e-12))


def raised_locally(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """``samples`` raised towards peaks at :data:`HEARING_PEAK_DBFS` (by at most
    :data:`MAX_RAISE_DB`, never lowered) by a gain that follows the loudest sound within
    :data:`LOCAL_S` of each moment: a murmur a second after a shout is raised, the shout is
    not. The detector hears every recording at one level, set by its loudest parts; this
    lets it hear the quiet parts too."""
    frame = max(1, round(0.1 * sample_rate))
    count = -(-len(samples) // frame)
    padded = np.zeros(count * frame, dtype=np.float32)
    padded[: len(samples)] = np.abs(samples)
    peak_db = 20 * np.log10(np.maximum(padded.reshape(count, frame).max(axis=1), 1e-9))
    reach = round(LOCAL_S / 0.1)
    around = np.pad(peak_db, reach, mode="edge")
    loudest = np.lib.stride_tricks.sliding_window_view(around, 2 * reach + 1).max(axis=1)
    gain_db = np.clip(HEARING_PEAK_DBFS - loudest, 0.0, MAX_RAISE_DB)
    centres = (np.arange(count) + 0.5) * frame
    gain = np.interp(np.arange(len(samples)), centres, 10 ** (gain_db / 20))
    return (samples * gain).astype(np.float32)


def _join_short(
    spans: list[tuple[float, float]], *, min_segment_s: float, max_gap_s: float
) -> list[tuple[float, float]]:
    """Join each span shorter than ``min_segment_s`` to its nearer neighbour closer than
    ``max_gap_s``, shortest first, until none can be joined."""
    spans = list(spans)
    while True:
        candidates = [
            (end - start, index)
            for index, (start, end) in enumerate(spans)
            if end - start < min_segment_s
            and _nearer_neighbour(spans, index, max_gap_s) is not None
        ]
        if not candidates:
            return spans
        _, index = min(candidates)
        other = _nearer_neighbour(spans, index, max_gap_s)
        first, second = sorted((index, other))
        spans[first : second + 1] = [(spans[first][0], spans[second][1])]


def _nearer_neighbour(spans: list[tuple[float, float]], index: int, max_gap_s: float) -> int | None:
    """The index of the neighbour of ``spans[index]`` with the shorter pause between them,
    when that pause is under ``max_gap_s``."""
    gaps = []
    if index > 0:
        gaps.append((spans[index][0] - spans[index - 1][1], index - 1))
    if index + 1 < len(spans):
        gaps.append((spans[index + 1][0] - spans[index][1], index + 1))
    gap, neighbour = min(gaps, default=(np.inf, None))
    return neighbour if gap < max_gap_s else None


def _cut_long(span: tuple[float, float], max_segment_s: float) -> list[tuple[float, float]]:
    """``span`` cut into equal parts no longer than ``max_segment_s``."""
    start, end = span
    parts = max(1, int(np.ceil((end - start) / max_segment_s)))
    edges = np.linspace(start, end, parts + 1)
    return [(float(a), float(b)) for a, b in itertools.pairwise(edges)]
