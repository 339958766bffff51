"""Prefect orchestration of the pipeline, and the ``ser`` command line."""

import os

# A local temporary Prefect server otherwise tries to send usage telemetry at start-up,
# which fails noisily on offline machines.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
