"""Small experiment YAML files for tests that train on the synthetic demo corpus."""

from __future__ import annotations

from pathlib import Path

import yaml


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
