"""Rolling ``@champion`` back: the previous champion (or a named version) serves again.

The version a champion replaced is recorded when it is promoted (its
``promotion.champion_version`` tag); rolling back moves the alias there, after checking that
the version loads, and records when, from which version and why as tags on both versions.
Servers started by ``ser serve`` follow the alias and swap without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from experiments.tracking.registry import CHAMPION, PromotionError


@dataclass(frozen=True)
class Rollback:
    """What a rollback did: the alias moved from ``from_version`` to ``to_version``."""

    model_name: str
    from_version: str
    to_version: str
    at: str
    reason: str


def rollback(model_name: str, *, to: str | None = None, reason: str = "") -> Rollback:
    """Move ``@champion`` of ``model_name`` back to ``to`` (default: the version the current
    champion replaced). Raises :class:`PromotionError`, moving nothing, when there is no
    champion, no recorded previous one, or the target does not exist or does not load."""
    client = MlflowClient()
    try:
        current = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        raise PromotionError(f"{model_name} has no @{CHAMPION}: nothing to roll back") from None
    target = to or current.tags.get("promotion.champion_version")
    if not target or target == "none":
        raise PromotionError(
            f"{model_name} v{current.version} replaced no recorded champion; name the version "
            "to serve with --to VERSION"
        )
    if str(target) == str(current.version):
        raise PromotionError(f"{model_name} v{target} is already @{CHAMPION}")
    try:
        client.get_model_version(model_name, str(target))
    except MlflowException:
        raise PromotionError(f"{model_name} has no version {target}") from None
    try:
        mlflow.pyfunc.load_model(f"models:/{model_name}/{target}")
    except Exception as exc:
        raise PromotionError(
            f"{model_name} v{target} does not load ({type(exc).__name__}: {exc}); "
            f"@{CHAMPION} stays on v{current.version}"
        ) from exc
    at = datetime.now(UTC).isoformat(timespec="seconds")
    why = reason or "no reason given"
    client.set_registered_model_alias(model_name, CHAMPION, str(target))
    client.set_model_version_tag(model_name, str(current.version), "rollback.demoted_at", at)
    client.set_model_version_tag(model_name, str(current.version), "rollback.reason", why)
    for key, value in {
        "rollback.restored_at": at,
        "rollback.from_version": str(current.version),
        "rollback.reason": why,
    }.items():
        client.set_model_version_tag(model_name, str(target), key, value)
    return Rollback(model_name, str(current.version), str(target), at, why)
