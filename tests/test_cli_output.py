"""What a person sees from the long ``ser`` commands: progress and results, not library chatter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ser_features.demo_corpus import generate_demo_corpus

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

SER = Path(sys.executable).with_name("ser")
NOISE = ("INFO", "Downloading artifacts", "Finished in state", "Validating input example")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from prefect.settings import PREFECT_API_URL

    root = tmp_path_factory.mktemp("cli-output")
    generate_demo_corpus(root / "demo", n_speakers=4)
    config = {
        "name": "cli-output",
        "data": {"folders": [str(root / "demo")], "features_dir": str(root / "features")},
        "protocol": {"kind": "speaker_independent", "test_speakers": ["synthetic_demo_04"]},
        "trainers": {"sklearn_linear": {"param_grid": {"C": [0.01]}, "cv_folds": 2}},
        "tracking": {"experiment": "cli-output"},
        "registry": {"model_name": "cli-output", "metric": "uar"},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PREFECT_LOGGING_LEVEL": "INFO",  # the chatter that must not reach the screen
        "COLUMNS": "200",
    }
    return {"root": root, "env": env}


def ser(workspace, *args: str) -> str:
    result = subprocess.run(
        [str(SER), *args],
        cwd=workspace["root"],
        env=workspace["env"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_train_shows_progress_and_the_table_and_logs_the_rest(workspace):
    output = ser(workspace, "train", "--config", "config.yaml")
    assert re.search(
        r"extracting: (\d+) labelled clips, \1 to describe with spectral_prosodic", output
    )
    assert re.search(r"training sklearn_linear \(1/1\): UAR 0\.\d{3} \[\d+ s\]", output)
    assert re.search(r"┃ family\s+┃ status\s+┃ UAR", output), output
    for noise in NOISE:
        assert noise not in output, f"{noise!r} reached the screen:\n{output}"
    log = re.search(r"library output goes to (\S+\.log)", output)
    assert log, output
    logged = (workspace["root"] / log.group(1)).read_text()
    assert "Beginning flow run" in logged and "train-models" in logged


def test_verbose_shows_the_library_output_on_screen(workspace):
    output = ser(workspace, "--verbose", "promote", "--config", "config.yaml")
    assert "library output goes to" not in output
    assert "INFO" in output and "promote-model" in output
    assert "is now @champion" in output or "promoted to @champion" in output
