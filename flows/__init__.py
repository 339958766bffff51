"""Prefect orchestration of the pipeline, and the ``ser`` command line."""

import os

#: For Prefect's temporary local server (started when a flow runs without
#: ``PREFECT_API_URL``): it otherwise tries to send usage telemetry at start-up, which fails
#: noisily on offline machines.
PREFECT_SERVER_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def prefect_server_environment() -> None:
    """Set :data:`PREFECT_SERVER_ENV` (where unset) for this process and its children.

    Call it before the first flow runs (and before Prefect is imported): the ``ser``
    command line does, in its callback; so should a script that calls the flows directly.
    """
    for name, value in PREFECT_SERVER_ENV.items():
        os.environ.setdefault(name, value)
