"""Small experiment YAML files and private stores for tests that train on the demo corpus."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from ser_features.demo_corpus import generate_demo_corpus


@contextmanager
def demo_store(root: Path, *, n_speakers: int = 4, chdir: bool = True) -> Iterator[str]:
    """A synthetic corpus in ``root/demo`` and ``root/mlflow.db`` as the tracking store.

    Yields the store's URI; ``MLFLOW_TRACKING_URI`` (and, with ``chdir``, the working folder,
    where relative artifact paths resolve) are restored however the block ends.
    """
    generate_demo_corpus(root / "demo", n_speakers=n_speakers)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        if chdir:
            patch.chdir(root)
        yield uri


def write_config(
    folder: Path,
    name: str,
    trainers: dict,
    data: Path,
    *,
    serving: dict | None = None,
    experiment: str = "ser-tests",
) -> Path:
    """``folder/name.yaml``: spectral_prosodic features, speaker 4 held out, ``ser-emotion``."""
    config = {
        "name": name,
        "data": {
            "folders": [str(data)],
            "features": "spectral_prosodic",
            "features_dir": str(folder / "features"),
        },
        "protocol": {"kind": "speaker_independent", "test_speakers": ["synthetic_demo_04"]},
        "trainers": trainers,
        "tracking": {"experiment": experiment},
        "registry": {"model_name": "ser-emotion", "metric": "uar"},
    }
    if serving is not None:
        config["serving"] = serving
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
