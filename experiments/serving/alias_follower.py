"""A served model that follows a registry alias: load the new version beside the old, swap.

``ser serve`` sets :data:`FOLLOW_ENV` (``NAME@alias``) in the scoring server's environment.
Every server worker process then runs one :class:`AliasFollower` thread that asks the
registry which version the alias names every :data:`INTERVAL_ENV` seconds (default 10).
When it names another version, the follower loads that version in the background, beside
the one serving, and swaps it in only once it is whole; requests already running finish on
the version they started with (they hold it), so nothing is answered by a half-loaded model
and no request fails. A version that cannot be loaded leaves the old one serving, with one
log line, and is tried again only when the alias moves again. Workers follow independently:
for up to one interval after a move, workers may answer with different versions, and each
answer names its own (``model_version``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

#: ``NAME@alias`` of the registered model a server follows (unset: it serves what it loaded).
FOLLOW_ENV = "SER_FOLLOW_MODEL"
#: Seconds between two looks at the registry.
INTERVAL_ENV = "SER_FOLLOW_INTERVAL_S"
DEFAULT_INTERVAL_S = 10.0

LOGGER = logging.getLogger("ser.serving")

Loaded = TypeVar("Loaded")


def followed_alias() -> tuple[str, str] | None:
    """``(model name, alias)`` from :data:`FOLLOW_ENV`, or None when the server does not follow."""
    value = os.environ.get(FOLLOW_ENV, "").strip()
    if "@" not in value:
        return None
    name, alias = value.rsplit("@", 1)
    return (name, alias) if name and alias else None


def alias_version(name: str, alias: str) -> str:
    """The version ``name@alias`` names in the registry now."""
    from mlflow import MlflowClient

    return str(MlflowClient().get_model_version_by_alias(name, alias).version)


class AliasFollower(Generic[Loaded]):
    """Keeps ``current`` at the version ``name@alias`` names, loaded by ``load(version)``.

    ``version`` is the version being served; ``current`` the loaded object. Call
    :meth:`start` once; the thread is a daemon and ends with the process.
    """

    def __init__(
        self,
        name: str,
        alias: str,
        load: Callable[[str], Loaded],
        *,
        version: str | None,
        current: Loaded,
        interval_s: float | None = None,
    ) -> None:
        self.name = name
        self.alias = alias
        self.load = load
        self.version = version
        self.current = current
        self.interval_s = interval_s or float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S))
        self._refused: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ser-alias-follower", daemon=True)

    def start(self) -> AliasFollower[Loaded]:
        """Start following (the first look is immediate)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following after the current look."""
        self._stop.set()

    def check(self) -> bool:
        """Look at the registry once; swap in a newly named version. True when it swapped."""
        try:
            wanted = alias_version(self.name, self.alias)
        except Exception as exc:  # the registry is unreachable for a moment: keep serving
            LOGGER.warning("cannot read %s@%s (%s); still serving v%s",
                           self.name, self.alias, exc, self.version)  # fmt: skip
            return False
        if wanted in (self.version, self._refused):
            return False
        try:
            loaded = self.load(wanted)
        except Exception as exc:
            self._refused = wanted
            LOGGER.error(
                "%s v%s (now %s@%s) cannot be served: %s: %s; still serving v%s",
                self.name, wanted, self.name, self.alias, type(exc).__name__, exc, self.version,
            )  # fmt: skip
            return False
        previous = self.version
        self.current, self.version, self._refused = loaded, wanted, None
        LOGGER.warning("now serving %s v%s (%s@%s; was v%s)",
                       self.name, wanted, self.name, self.alias, previous)  # fmt: skip
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check()
            self._stop.wait(self.interval_s)
