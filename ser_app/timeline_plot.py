"""The picture of one scored recording: its waveform coloured by the emotion of each segment,
the emotion over time with its confidence, and the class probabilities of the whole.

Examples
--------
>>> import numpy as np
>>> answer = {"emotion": "calm", "confidence": 0.6, "probabilities": {"calm": 0.6, "sad": 0.4},
...           "segments": [{"start": 0.0, "end": 1.0, "emotion": "calm", "confidence": 0.6}]}
>>> figure = plot_timeline(np.zeros(16000), 16000, answer)
>>> len(figure.axes)
3
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ser_features.labels import EMOTIONS

#: One colour per emotion, the same in every picture and on the page.
EMOTION_COLOURS: dict[str, str] = dict(
    zip(
        EMOTIONS,
        (
            "#9e9e9e",  # neutral
            "#80cbc4",  # calm
            "#fdd835",  # happy
            "#1e88e5",  # sad
            "#e53935",  # angry
            "#8e24aa",  # fearful
            "#43a047",  # disgust
            "#fb8c00",  # surprised
            "#6d4c41",  # boredom
        ),
        strict=True,
    )
)
#: Colours for a data's own labels (``frustrated``, ``joy``), given out in name order.
_OWN_LABEL_COLOURS: tuple[str, ...] = (
    "#00897b", "#c0ca33", "#5e35b1", "#d81b60", "#3949ab", "#f4511e", "#7cb342",
    "#00acc1", "#ffb300", "#546e7a", "#8d6e63", "#ec407a",
)  # fmt: skip


def label_colours(labels: Iterable[str]) -> dict[str, str]:
    """A colour for each of a model's ``labels``: the canonical emotions keep theirs, the
    others get the palette's colours in name order (the same labels, the same colours)."""
    labels = list(labels)
    own = sorted(label for label in set(labels) if label not in EMOTION_COLOURS)
    colours = {label: EMOTION_COLOURS[label] for label in labels if label in EMOTION_COLOURS}
    for number, label in enumerate(own):
        colours[label] = _OWN_LABEL_COLOURS[number % len(_OWN_LABEL_COLOURS)]
    return colours


def speech_time_shares(answer: dict[str, Any]) -> dict[str, float]:
    """Share of the scored speech time that each emotion takes, largest first."""
    seconds: dict[str, float] = defaultdict(float)
    for segment in answer["segments"]:
        seconds[segment["emotion"]] += segment["end"] - segment["start"]
    total = sum(seconds.values()) or 1.0
    return dict(sorted(((e, s / total) for e, s in seconds.items()), key=lambda kv: -kv[1]))


def plot_timeline(
    samples: np.ndarray,
    sample_rate: int,
    answer: dict[str, Any],
    *,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Draw ``answer`` (one row of the served model's output) over the recording's waveform.

    Parameters
    ----------
    samples, sample_rate : the decoded recording, mono.
    answer : ``emotion``, ``confidence``, ``probabilities`` and ``segments`` as served.
    title : heading; by default the overall emotion and its confidence.
    path : where to save the picture as PNG, if given.
    """
    colour = label_colours(answer["probabilities"])
    figure = Figure(figsize=(10, 6.2), layout="constrained")
    wave, timeline, bars = figure.subplots(3, 1, gridspec_kw={"height_ratios": [2.2, 1.3, 1.6]})
    times = np.arange(len(samples)) / sample_rate
    step = max(1, len(samples) // 20000)  # enough points for the eye, few for the file
    wave.plot(times[::step], samples[::step], color="#37474f", linewidth=0.6)
    for segment in answer["segments"]:
        wave.axvspan(
            segment["start"],
            segment["end"],
            color=colour[segment["emotion"]],
            alpha=0.35,
            linewidth=0,
        )
    duration = len(samples) / sample_rate
    wave.set_xlim(0, duration)
    wave.set_ylabel("amplitude")
    wave.set_title(title or f"{answer['emotion']} ({answer['confidence']:.0%} overall)")
    present = sorted({s["emotion"] for s in answer["segments"]}, key=_order)
    wave.legend(
        handles=[Patch(color=colour[e], alpha=0.6, label=e) for e in present],
        loc="upper right",
        fontsize=8,
        ncols=min(4, max(1, len(present))),
    )

    for segment in answer["segments"]:
        timeline.barh(
            0,
            segment["end"] - segment["start"],
            left=segment["start"],
            height=0.8,
            color=colour[segment["emotion"]],
            alpha=0.3 + 0.7 * segment["confidence"],
        )
        timeline.text(
            (segment["start"] + segment["end"]) / 2,
            0,
            f"{segment['emotion']}\n{segment['confidence']:.0%}",
            ha="center",
            va="center",
            fontsize=8,
        )
    timeline.set_xlim(0, duration)
    timeline.set_yticks([])
    timeline.set_xlabel("time (s); opacity = confidence")

    labels = sorted(answer["probabilities"], key=_order)
    values = [answer["probabilities"][label] for label in labels]
    bars.bar(labels, values, color=[colour[label] for label in labels])
    bars.set_ylim(0, 1)
    bars.set_ylabel("probability")
    for position, value in enumerate(values):
        bars.text(position, value + 0.02, f"{value:.0%}", ha="center", fontsize=8)
    if path is not None:
        figure.savefig(path, dpi=110)
    return figure


def _order(emotion: str) -> int:
    return EMOTIONS.index(emotion) if emotion in EMOTIONS else len(EMOTIONS)
