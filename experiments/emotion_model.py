"""Where models registered before the ``experiments.serving`` package existed find the served
pyfunc: their logged code file imports ``experiments.emotion_model``."""

from experiments.serving.emotion_model import EmotionModel

__all__ = ["EmotionModel"]
