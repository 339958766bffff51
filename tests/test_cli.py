"""The `ser` command line: help texts and clear errors before any work starts."""

from __future__ import annotations

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
    assert "not a folder" in missing.output
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
