"""Models and evaluation, in rooms that say what they hold.

- :mod:`experiments.config`: the typed experiment file (YAML) and its validation;
- :mod:`experiments.families`: the model-family registry, one module per family, and the
  on-disk form of a fitted model (:mod:`experiments.families.predictors`);
- :mod:`experiments.training`: fitting a family under a protocol, and feature normalisation;
- :mod:`experiments.evaluation`: splits, metrics and confusion plots;
- :mod:`experiments.tracking`: MLflow runs, the model registry's promotion rules, the UI;
- :mod:`experiments.serving`: the served pyfunc, its scoring-server limits, the MOJO scorer;
- :mod:`experiments.engines`: the H2O cluster and the watchdog of child servers.
"""
