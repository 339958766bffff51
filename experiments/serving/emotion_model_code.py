"""Model-from-code entry point: MLflow executes this file to build the served model."""

import mlflow

from experiments.serving.emotion_model import EmotionModel

mlflow.models.set_model(EmotionModel())
