"""Refresh docker/requirements-serve.lock, the hashed lock of the model-serving image.

The serving image (docker/Dockerfile.serve) needs only what scoring a registered model needs:
reading audio, the feature sets, the families' predictors, the MOJO scorer, ``mlflow models
serve`` (mlflow-skinny: the scoring server without the tracking server's UI and database
drivers), the prediction log. Training, orchestration and the app (H2O's Python client and
its bundled cluster jar, Prefect, Dask, Gradio, matplotlib, the documentation tools) stay out.

This walks the dependency closure of :data:`SERVING_ROOTS` through the installed metadata of
the project's virtualenv and copies those entries, hashes included, from requirements.lock:
the image gets exactly the versions CI tested. torch is installed first and separately, as in
requirements.lock.

    .venv/bin/python docker/refresh-serve-lock.py    # after requirements.lock changed
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT_LOCK = ROOT / "requirements.lock"
SERVE_LOCK = ROOT / "docker" / "requirements-serve.lock"

# What the served pyfunc and its server import; the rest follows from their metadata.
SERVING_ROOTS = (
    "torch",  # keras' backend and the voice-activity detector; installed first, not locked
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "soundfile",
    "soxr",
    "librosa",
    "opensmile",
    "scikit-learn",
    "keras",
    "jpype1",
    "silero-vad",
    "onnxruntime",  # runs the voice-activity detector
    "transformers",
    "mlflow-skinny",
    "pyyaml",
    "pydantic",
    "joblib",
    "threadpoolctl",
    "filelock",
)
NOT_LOCKED = {"torch"}
HEADER = """\
# The model-serving image's distributions (docker/Dockerfile.serve), with hashes: the
# dependency closure of what scoring a registered model needs, copied from requirements.lock
# (same versions, same hashes). torch comes first, separately. Refresh with:
#   .venv/bin/python docker/refresh-serve-lock.py
"""


def closure(roots: tuple[str, ...]) -> set[str]:
    """Canonical names of ``roots`` and everything they require in this environment."""
    seen: set[str] = set()
    todo = [canonicalize_name(name) for name in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


def lock_entries(path: Path) -> dict[str, str]:
    """``{canonical name: entry text}`` of a hashed lock (an entry runs to the next name)."""
    entries = re.split(r"\n(?=[A-Za-z0-9])", path.read_text())
    return {
        canonicalize_name(entry.split("==", 1)[0]): entry.rstrip("\n")
        for entry in entries
        if re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*==", entry)
    }


def main() -> None:
    project = lock_entries(PROJECT_LOCK)
    wanted = closure(SERVING_ROOTS) - NOT_LOCKED
    missing = sorted(wanted - set(project))
    if missing:
        sys.exit(f"not in requirements.lock (run scripts/refresh_lock.sh first): {missing}")
    body = "\n".join(project[name] for name in sorted(wanted))
    SERVE_LOCK.write_text(HEADER + body + "\n")
    print(f"wrote {SERVE_LOCK.relative_to(ROOT)} ({len(wanted)} of {len(project)} distributions)")


if __name__ == "__main__":
    main()
