"""Audio in, numbers out: loading, validation, corpora and feature sets for speech emotion."""

from ser_features.errors import AudioError
from ser_features.labels import EMOTIONS

__all__ = ["EMOTIONS", "AudioError"]
