"""Models and evaluation: splits, trainers, metrics, MLflow tracking and the registry rules."""
