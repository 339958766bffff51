"""Skip a test when a system tool is missing, except under CI, which installs everything."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    """True when ``CI`` is set to a true value (``.ci/run`` sets ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require(condition: bool, reason: str) -> None:
    """Skip when ``condition`` fails, except under CI, which installs everything: fail there."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI=true: .ci/run is expected to install it)")
    pytest.skip(reason)
