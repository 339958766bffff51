"""Where scikit-learn models pickled before ``experiments.families`` existed find their
classes (``experiments.trainers.sklearn_*``); new code imports ``experiments.families``."""
