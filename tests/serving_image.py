"""What the model-serving image installs, and Python run with only that importable.

The serving image (docker/Dockerfile.serve) installs docker/requirements-serve.lock, a subset
of the project's lock. :func:`run_with_serving_packages_only` runs code in a child Python of
this environment whose imports of any other distribution's modules fail, as they would in the
image, so a served model that needs a training-only package fails a test, not a deployment.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path
from types import ModuleType

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
SERVE_LOCK_SCRIPT = ROOT / "docker" / "refresh-serve-lock.py"

_BLOCKER = """
import sys
BLOCKED = frozenset(sys.argv.pop(1).split(","))

class HidingFinder:
    # every finder answers 'not here' for the blocked modules, so they are absent, as in the
    # image: `import` raises ModuleNotFoundError and importlib.util.find_spec returns None
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED or not hasattr(self.finder, "find_spec"):
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, attribute):
        return getattr(self.finder, attribute)

sys.meta_path[:] = [HidingFinder(finder) for finder in sys.meta_path]
"""


def serve_lock_script() -> ModuleType:
    """docker/refresh-serve-lock.py as a module (its closure and lock parsing)."""
    spec = importlib.util.spec_from_file_location("refresh_serve_lock", SERVE_LOCK_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def modules_outside_the_serving_image() -> set[str]:
    """Top-level modules of this environment that no distribution of the image provides."""
    script = serve_lock_script()
    inside = set(script.lock_entries(script.SERVE_LOCK)) | script.NOT_LOCKED | {"ser-automl"}
    return {
        module
        for module, distributions in packages_distributions().items()
        if not any(canonicalize_name(d) in inside for d in distributions)
    }


def run_with_serving_packages_only(
    code: str, *, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``code`` in a child Python that can import only what the serving image holds."""
    blocked = ",".join(sorted(modules_outside_the_serving_image()))
    return subprocess.run(
        [sys.executable, "-c", _BLOCKER + code, blocked],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
