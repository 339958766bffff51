"""The engines the pipeline runs on besides Prefect and MLflow: the H2O cluster
(:mod:`~experiments.engines.h2o_cluster`) and the watchdog that takes child servers down
with their parent (:mod:`~experiments.engines.process_guard`)."""

__all__ = ["h2o_cluster", "process_guard"]
