"""The served model: the pyfunc that turns raw audio into emotions
(:mod:`~experiments.serving.emotion_model`), the ``mlflow models serve`` command and its
environment (:mod:`~experiments.serving.command`), the scoring server's request limits
(:mod:`~experiments.serving.limits`) and the in-process H2O MOJO scorer
(:mod:`~experiments.serving.mojo_scorer`).

Import the submodules directly; this package imports nothing so that the scoring server's
protocol class loads without the model's dependencies.
"""

__all__ = ["command", "emotion_model", "limits", "mojo_scorer"]
