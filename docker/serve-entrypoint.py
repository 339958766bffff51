#!/usr/bin/env python
"""Entrypoint of the serving image: wait until the model to serve exists, then run the command.

``mlflow models serve -m models:/NAME@ALIAS`` exits at once when the registry has no such
alias yet (a fresh stack has no champion until the first ``ser promote`` or retrain), and a
restart loop would hammer the tracking server.  This waits, polling the registry named by
``MLFLOW_TRACKING_URI`` every ``SER_CHAMPION_POLL_SECONDS`` (30), then execs the command.
Commands without a ``models:/NAME@ALIAS`` URI are run straight away. With one, the served
model follows that alias (``SER_FOLLOW_MODEL``): a promotion or rollback is served without a
restart.
"""

from __future__ import annotations

import itertools
import os
import sys
import time


def model_alias(argv: list[str]) -> tuple[str, str] | None:
    """``(NAME, ALIAS)`` of the ``-m/--model-uri models:/NAME@ALIAS`` argument, if any."""
    for flag, value in itertools.pairwise(argv):
        if flag in ("-m", "--model-uri") and value.startswith("models:/") and "@" in value:
            name, alias = value.removeprefix("models:/").rsplit("@", 1)
            return name, alias
    return None


def wait_for_alias(name: str, alias: str, poll_seconds: float) -> None:
    """Block until the registry resolves ``NAME@ALIAS``."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    announced = False
    while True:
        try:
            version = client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            if not announced:
                print(
                    f"waiting for models:/{name}@{alias} on {client.tracking_uri} "
                    f"(promote a model first: `ser promote` or a retrain run): {exc.message}",
                    flush=True,
                )
                announced = True
            time.sleep(poll_seconds)
            continue
        print(f"serving {name} v{version.version} (@{alias})", flush=True)
        return


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: serve-entrypoint COMMAND [ARGS...]")
    target = model_alias(argv)
    if target is not None:
        wait_for_alias(*target, float(os.environ.get("SER_CHAMPION_POLL_SECONDS", "30")))
        # the served model then follows the alias (experiments.serving.alias_follower)
        os.environ.setdefault("SER_FOLLOW_MODEL", "@".join(target))
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
