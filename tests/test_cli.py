"""The `ser` command line: help texts and clear errors before any work starts."""

from __future__ import annotations

import os

from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def test_every_command_has_help():
    for command in ("extract", "train", "promote", "predict", "serve", "demo", "data"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_extract_names_a_missing_folder_and_an_unknown_feature_set(tmp_path):
    missing = runner.invoke(app, ["extract", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert missing.exit_code == 2
    assert "no such folder or manifest" in missing.output
    unknown = runner.invoke(
        app, ["extract", str(tmp_path), "--out", str(tmp_path), "--features", "x"]
    )
    assert unknown.exit_code == 2
    assert "unknown feature set" in unknown.output


def test_train_names_a_broken_config(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("data: {folders: [x]}\nprotocol: {kind: nonsense}\n")
    result = runner.invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 2
    assert "protocol.kind" in result.output


def test_serve_defaults_to_one_worker_per_core_as_memory_allows():
    from experiments.serving.command import WORKER_BUDGET_MB, default_workers, serving_environment

    assert default_workers(cpus=2, available_mb=20_000) == 2
    assert default_workers(cpus=16, available_mb=4 * WORKER_BUDGET_MB) == 2  # half the memory
    assert default_workers(cpus=4, available_mb=100) == 1  # never none
    assert 1 <= default_workers() <= (os.cpu_count() or 1)
    env = serving_environment("sqlite:///x.db")
    assert env["OMP_NUM_THREADS"] == "1"  # the cores go to workers, not to BLAS threads
