"""Prefect orchestration of the pipeline, and the ``ser`` command line."""
