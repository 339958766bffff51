"""Own labelled speech end to end: a manifest with renamed labels and segments of long
recordings, an AudioFolder and a folder per label, all real RAVDESS speech under names no
built-in parser knows; ``ser train`` -> ``ser promote`` -> ``ser predict`` answering in the
data's own labels, incremental re-extraction and ``ser retrain`` on a grown manifest.

Real components: Prefect flows on the session's server, a private MLflow sqlite store, the
``ser`` command line as a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from mlflow import MlflowClient

from experiments.tracking.registry import CHAMPION
from flows.extract import extract_features
from flows.promote import promote_model
from flows.retrain import retrain_flow
from flows.train import train_models

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

SER = Path(sys.executable).with_name("ser")
MODEL = "own-data-emotion"
#: RAVDESS emotion codes and the names this "customer" gives them.
OWN_NAMES = {"05": "anger", "03": "joy", "04": "sorrow", "01": "neutral"}
LABELS = {"anger", "joy", "sad", "neutral"}  # sorrow is mapped to sad by the experiment


def actor_clips(shared: Path, actor: int) -> list[tuple[Path, str]]:
    """(file, own label) of one RAVDESS actor's clips of the four emotions."""
    folder = shared / "ravdess" / f"Actor_{actor:02d}"
    return [
        (path, OWN_NAMES[path.name.split("-")[2]])
        for path in sorted(folder.glob("*.flac"))
        if path.name.split("-")[2] in OWN_NAMES
    ]


def long_recording(clips: list[tuple[Path, str]], out: Path) -> list[tuple[float, float, str]]:
    """Join ``clips`` with 0.7 s pauses into ``out``; the (start, end, label) of each."""
    parts, spans, at = [], [], 0.0
    for path, label in clips:
        samples, rate = sf.read(path, dtype="float32", always_2d=True)
        mono = samples.mean(axis=1)
        spans.append((round(at, 3), round(at + len(mono) / rate, 3), label))
        parts += [mono, np.zeros(int(0.7 * rate), dtype=np.float32)]
        at += len(mono) / rate + 0.7
    sf.write(out, np.concatenate(parts), rate, subtype="PCM_16")
    return spans


def manifest_rows(shared: Path, actors: range) -> list[dict]:
    """Whole-file rows of RAVDESS ``actors`` under their own label names."""
    return [
        {"path": str(path), "label": label, "speaker": f"actor{a}", "start": "", "end": ""}
        for a in actors
        for path, label in actor_clips(shared, a)
    ]


@pytest.fixture(scope="module")
def own(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("own-data")
    calls = root / "calls"
    calls.mkdir()
    rows = manifest_rows(shared_data, range(1, 5))
    for actor in (5, 6):  # two customers' long calls, one segment row per utterance
        name = f"call_{actor:02d}.wav"
        for start, end, label in long_recording(actor_clips(shared_data, actor), calls / name):
            rows.append(
                {"path": name, "label": label, "speaker": f"caller{actor}", "start": start,
                 "end": end}
            )  # fmt: skip
    rows.append({"path": "gone.wav", "label": "joy", "speaker": "x", "start": "", "end": ""})
    rows.append({"path": "call_05.wav", "label": "joy", "speaker": "x", "start": 3, "end": 2})
    manifest = calls / "calls.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)

    studio = root / "studio"  # Hugging Face AudioFolder: metadata.csv beside the audio
    studio.mkdir()
    metadata = []
    for actor in (7, 8):
        for path, label in actor_clips(shared_data, actor):
            (studio / path.name).symlink_to(path)
            metadata.append({"file_name": path.name, "emotion": label, "speaker_id": actor})
    pd.DataFrame(metadata).to_csv(studio / "metadata.csv", index=False)

    by_label = root / "phone"  # one sub-folder per label, nothing about speakers
    for actor in (9, 10):
        for number, (path, label) in enumerate(actor_clips(shared_data, actor)):
            (by_label / label).mkdir(parents=True, exist_ok=True)
            (by_label / label / f"rec{actor}_{number:03d}.flac").symlink_to(path)

    config = {
        "name": "own-data",
        "data": {
            "folders": [str(manifest), str(studio), str(by_label)],
            "features": "spectral_prosodic",
            "features_dir": str(root / "features"),
            "labels": {"map": {"sorrow": "sad"}},
        },
        "protocol": {"kind": "speaker_independent", "test_fraction": 0.34, "seed": 1},
        "trainers": {"sklearn_linear": {"param_grid": {"C": [0.01]}, "cv_folds": 2}},
        "tracking": {"experiment": "own-data-tests"},
        "registry": {"model_name": MODEL, "metric": "uar"},
    }
    config_path = root / "own.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(root)
        report = train_models(config_path=str(config_path))
        yield {
            "root": root, "uri": uri, "config": config_path, "report": report,
            "manifest": manifest, "rows": rows, "shared": shared_data,
        }  # fmt: skip


def test_training_learns_the_data_own_labels_from_three_layouts(own):
    report = own["report"]
    (family,) = report.families
    assert family.status == "FINISHED", family.error
    assert report.extraction.quarantined == 2  # the two bad manifest rows
    run = MlflowClient().get_run(family.run_id)
    assert set(run.data.params["corpora"].split(",")) == {"calls", "studio", "phone"}
    assert run.data.params["grouping"].startswith("splits keep clips apart by speaker (")
    assert "recording (56 clips)" in run.data.params["grouping"]
    labels = MlflowClient().download_artifacts(family.run_id, "split/test_paths.json")
    split = pd.read_json(labels, typ="series")
    assert set(split["labels"]) == LABELS
    assert set(split["emotions"]) == LABELS  # every label on the test side
    quarantine = pd.read_parquet(own["root"] / "features" / "quarantine.parquet")
    reasons = dict(zip(quarantine["path"], quarantine["reason"], strict=True))
    last = len(own["rows"]) + 1  # the header is line 1
    assert "audio file not found: gone.wav" in reasons[f"{own['manifest']}: line {last - 1}"]
    assert reasons[f"{own['manifest']}: line {last}"] == "end (2 s) must be after start (3 s)"


def test_segments_are_described_from_their_span_and_grouped_by_speaker(own):
    table = pd.read_parquet(own["root"] / "features" / "features.parquet")
    segments = table[table["start"].notna()]
    assert len(segments) == 2 * 28
    assert segments["path"].str.contains(r"call_0[56]\.wav#t=").all()
    assert set(segments["speaker"]) == {"calls_caller5", "calls_caller6"}
    assert (segments["duration_s"] <= segments["end"] - segments["start"] + 0.01).all()
    assert segments["digest"].nunique() == len(segments)
    grouped = table.groupby("corpus")["grouped_by"].agg(set).to_dict()
    assert grouped == {"calls": {"speaker"}, "studio": {"speaker"}, "phone": {"recording"}}


def ser(uri: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "COLUMNS": "200"}
    return subprocess.run(
        [str(SER), *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_promote_then_predict_answers_in_the_data_own_labels(own):
    decision = promote_model(
        config_path=str(own["config"]), parent_run_id=own["report"].parent_run_id
    )
    assert decision.promoted
    call = own["root"] / "calls" / "call_05.wav"
    result = ser(own["uri"], "predict", str(call), "--model", MODEL)
    assert result.returncode == 0, result.stdout + result.stderr
    overall = result.stdout.split(": ", 1)[1].split()[0]
    assert overall in LABELS
    timeline = [line.split() for line in result.stdout.splitlines() if " s " in line]
    assert len(timeline) >= 5 and {row[-2] for row in timeline} <= LABELS

    among = ser(own["uri"], "predict", str(call), "--model", MODEL, "--labels", "anger,sorrow")
    assert among.returncode != 0
    assert "'sorrow'" in among.stdout + among.stderr  # mapped away: the model knows 'sad'


def test_a_grown_manifest_describes_only_what_changed(own):
    root, rows = own["root"], [dict(row) for row in own["rows"]]
    rows[0]["label"] = "joy"  # relabelled: no new description
    removed = rows.pop(1)
    rows += manifest_rows(own["shared"], range(11, 12))
    manifest = root / "calls" / "grown.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    out = root / "features-grown"
    first = extract_features(data_dirs=[str(own["manifest"])], out_dir=str(out))
    grown = extract_features(data_dirs=[str(manifest)], out_dir=str(out))
    assert grown.extracted == 28 and grown.cached == first.rows - 1 and grown.dropped == 1
    assert grown.rows == first.rows - 1 + 28
    table = pd.read_parquet(out / "features.parquet")
    # the table names clips by their resolved paths (../shared may be a link)
    assert str(Path(removed["path"]).resolve()) not in set(table["path"])
    relabelled = table.loc[table["path"] == str(Path(rows[0]["path"]).resolve()), "emotion"]
    assert relabelled.tolist() == ["joy"]
    assert set(table["corpus"]) == {"grown"}  # the corpus is the manifest's stem


def test_retrain_on_the_grown_data_promotes_only_if_better(own):
    client = MlflowClient()
    before = str(client.get_model_version_by_alias(MODEL, CHAMPION).version)
    rows = own["rows"] + manifest_rows(own["shared"], range(11, 13))
    pd.DataFrame(rows).to_csv(own["manifest"], index=False)
    report = retrain_flow(config_path=str(own["config"]))
    assert report.extracted == 2 * 28
    decision = report.decision
    after = str(client.get_model_version_by_alias(MODEL, CHAMPION).version)
    better = decision.challenger_score > decision.champion_score
    assert decision.promoted == better
    assert after == (decision.version if better else before)
