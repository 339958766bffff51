"""The documentation's examples run: a stale command, manifest, experiment file or request
example fails here.

Blocks meant to run are marked in the Markdown by the comment ``<!-- runs in tests -->`` on the
line before their fence. The own-data walk-through runs as a real shell script (``ser data
demo``, ``ser data check``, ``ser train``, ``ser promote``, ``ser predict`` on the synthetic
demo corpus, reporting to the session's Prefect server), and the Python request example of the
serving page is sent to a real ``ser serve`` process of the model it promoted.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from local_server import free_port, running

from experiments.config import parse_config
from experiments.serving.command import serve_command, serving_environment
from ser_features.manifests import read_manifest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BIN = Path(sys.executable).parent
MARK = "<!-- runs in tests -->"


def marked_blocks(page: str) -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block marked to run on ``docs/<page>``."""
    text = (DOCS / page).read_text()
    pattern = re.escape(MARK) + r"\s*\n```(\w+)\n(.*?)\n```"
    return re.findall(pattern, text, flags=re.S)


def fenced(page: str, language: str, first_line: str) -> str:
    """The fenced ``language`` block of ``docs/<page>`` whose first line is ``first_line``."""
    for lang, code in re.findall(r"```(\w+)\n(.*?)\n```", (DOCS / page).read_text(), re.S):
        if lang == language and code.startswith(first_line):
            return code
    raise AssertionError(f"no {language} block starting {first_line!r} in docs/{page}")


def test_the_own_data_manifest_and_experiment_file_are_valid(tmp_path):
    import numpy as np
    import soundfile as sf

    (tmp_path / "calls").mkdir()
    tone = 0.3 * np.sin(np.arange(30 * 16000) / 7).astype("float32")
    sf.write(tmp_path / "calls" / "0001.wav", tone, 16000)
    manifest = tmp_path / "calls.csv"
    manifest.write_text(fenced("own-data.md", "csv", "path,label") + "\n")
    rows = read_manifest(manifest)
    assert [c.labels.emotion for c in rows.clips] == ["frustrated", "neutral"]
    assert [reason.split(":")[0] for _, reason in rows.refused] == ["audio file not found"] * 2
    config = parse_config(yaml.safe_load(fenced("own-data.md", "yaml", "# my_calls.yaml")))
    assert config.data.folders == ("calls.csv",) and config.data.labels.drop == ("unclear",)
    sample = fenced("configuration.md", "yaml", "name: my-calls")
    assert parse_config(yaml.safe_load(sample)).trainers["h2o_automl"]["max_runtime_secs"] == 600


def test_the_readme_manifest_reads_as_it_says(tmp_path):
    import numpy as np
    import soundfile as sf

    (tmp_path / "calls").mkdir()
    call = 0.3 * np.sin(np.arange(32 * 16000) / 7).astype("float32")  # one 32 s call
    sf.write(tmp_path / "calls" / "0001.wav", call, 16000)
    manifest = tmp_path / "calls.csv"
    manifest.write_text(fenced("../README.md", "csv", "path,label") + "\n")
    rows = read_manifest(manifest)
    assert [c.labels.emotion for c in rows.clips] == [
        "neutral",
        "frustrated",
        "neutral",
        "satisfied",
    ]
    assert [(c.start, c.end) for c in rows.clips][1] == (12.5, 19.0)  # segments of the call
    assert [reason.split(":")[0] for _, reason in rows.refused] == ["audio file not found"] * 5


def test_the_fused_members_example_is_a_valid_trainers_section():
    trainers = yaml.safe_load(fenced("model-families.md", "yaml", "trainers:"))
    config = parse_config({"name": "x", "data": {"folders": ["calls.csv"]}, **trainers})
    members = config.trainers["fused"]["members"]
    assert list(members) == ["sklearn_linear", "sklearn_mlp", "h2o_automl"]
    assert members["h2o_automl"]["pca_components"] == 128


@pytest.fixture(scope="module")
def walked_through(tmp_path_factory, prefect_server):
    """The own-data page's demo walk-through, run as written in a fresh folder."""
    from prefect.settings import PREFECT_API_URL

    ((language, script),) = marked_blocks("own-data.md")
    assert language == "bash"
    root = tmp_path_factory.mktemp("docs-walkthrough")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PREFECT_HOME": str(root / "prefect-home"),
        "COLUMNS": "200",
    }
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return {"root": root, "env": env, "output": result.stdout}


def test_the_own_data_walk_through_trains_and_answers_in_its_own_labels(walked_through):
    output = walked_through["output"]
    assert "ok: a run can start on this data" in output
    assert "promoted to @champion" in output
    answers = re.findall(r"\.wav: (\S+) \(\d+%\)", output)
    assert answers and set(answers) <= {"anger", "joy", "sorrow", "neutral"}


def test_the_serving_page_request_example_gets_an_answer(walked_through, tmp_path):
    ((language, example),) = marked_blocks("serving.md")
    assert language == "python" and "http://127.0.0.1:5000/invocations" in example
    root = walked_through["root"]
    clip = sorted((root / "demo-audio").rglob("*-05-*.wav"))[0]
    port = free_port()
    code = example.replace("127.0.0.1:5000", f"127.0.0.1:{port}").replace(
        '"some_call.wav"', repr(str(clip))
    )
    uri = walked_through["env"]["MLFLOW_TRACKING_URI"]
    with running(
        serve_command("demo-own", port=port),
        env=serving_environment(uri),
        log_path=tmp_path / "server.log",
        ready_url=f"http://127.0.0.1:{port}/ping",
    ):
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
        )
    assert result.returncode == 0, result.stderr
    answer = ast.literal_eval(result.stdout.strip())  # the printed answer row
    assert answer["emotion"] in {"anger", "joy", "sorrow", "neutral"}
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-6 and not answer["error"]
