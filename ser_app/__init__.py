"""Try the served model by hand: a local web page and the timeline picture of a recording.

Scoring always goes through the registered pyfunc, in-process or over HTTP from a running
``mlflow models serve``; nothing here computes an emotion itself.
"""

from ser_app.scoring import EndpointScorer, ModelDetails, RegistryScorer, ScoringError
from ser_app.timeline_plot import EMOTION_COLOURS, plot_timeline, speech_time_shares

__all__ = [
    "EMOTION_COLOURS",
    "EndpointScorer",
    "ModelDetails",
    "RegistryScorer",
    "ScoringError",
    "plot_timeline",
    "speech_time_shares",
]
