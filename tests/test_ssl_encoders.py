"""Pretrained speech encoders as a feature set (``ssl:<hub id or folder>``).

No weights can be downloaded here, so every encoder is a tiny one with random weights, built
from the real ``transformers`` architecture classes and saved in the hub's folder layout; it
goes through the project's real loading path. Their embeddings carry no emotion: these tests
check the plumbing (layers, pooling, chunks, batches, caching, identity, serving), never
accuracy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import soundfile as sf
import torch
import yaml
from experiment_configs import demo_store
from local_server import free_port, running
from served_demo import wav_b64
from transformers import AutoModel

from experiments.serving.command import serve_command, serving_environment
from flows.extract import extract_features
from flows.promote import promote_model
from flows.train import train_models
from ser_features.audio import Clip, load_audio
from ser_features.encoders import (
    EncoderNotFound,
    carried_encoders,
    carry_encoder,
    locate_encoder,
    use_carried_encoders,
)
from ser_features.encoders.random_init import write_random_encoder
from ser_features.encoders.runtime import ARCHITECTURES, EncoderOptions, LoadedEncoder
from ser_features.extraction import ClipJob, content_digest, extract_batch
from ser_features.feature_sets import feature_set_parts, get_feature_spec
from ser_features.feature_sets.ssl import SSL_LOAD, parse_ssl_name

pytestmark = pytest.mark.usefixtures("prefect_server")

#: Actor 2, angry, strong intensity (1.9 s) and actor 3, sad (3.4 s): two lengths.
CLIPS = ("ravdess/Actor_02/03-01-05-02-01-01-02.flac", "ravdess/Actor_03/03-01-04-01-02-01-03.flac")


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    """A tiny random-weight encoder of every supported architecture, in hub layout."""
    root = tmp_path_factory.mktemp("encoders")
    return {name: write_random_encoder(root / name, name) for name in ARCHITECTURES}


@pytest.fixture(scope="module")
def speech(shared_data) -> list[Clip]:
    return [load_audio(shared_data / clip, options=SSL_LOAD) for clip in CLIPS]


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_each_architecture_gives_the_pooled_hidden_states_transformers_computes(
    encoders, speech, architecture
):
    """The chosen layers' mean and standard deviation over frames, as ``transformers``'
    own ``hidden_states`` of the whole (untruncated) model give them."""
    folder = encoders[architecture]
    spec = get_feature_spec(f"ssl:{folder}?layers=1-2")
    rows = spec.describe_many(speech)
    model = AutoModel.from_pretrained(folder).eval()
    encoder = LoadedEncoder(folder, EncoderOptions(layers=(1, 2)))
    for clip, row in zip(speech, rows, strict=True):
        values = np.array(list(row.values()))
        assert len(values) == 2 * encoder.dim and np.isfinite(values).all()
        inputs = encoder.processor(clip.samples, sampling_rate=16000, return_tensors="pt")
        with torch.inference_mode():
            if architecture == "whisper":
                out = model.get_encoder()(inputs["input_features"], output_hidden_states=True)
                frames = -(-len(clip.samples) // 320)
            else:
                out = model(inputs["input_values"], output_hidden_states=True)
                frames = out.last_hidden_state.shape[1]
        layers = torch.stack([out.hidden_states[1], out.hidden_states[2]]).mean(0)[0, :frames]
        expected = np.concatenate([layers.mean(0).numpy(), layers.std(0, unbiased=False).numpy()])
        np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-5)


def test_options_change_the_numbers_and_batches_do_not(encoders, speech):
    folder = encoders["wavlm"]
    middle = get_feature_spec(f"ssl:{folder}").describe_many(speech)
    low = get_feature_spec(f"ssl:{folder}?layers=0").describe_many(speech)
    mean_only = get_feature_spec(f"ssl:{folder}?pooling=mean").describe_many(speech)
    assert len(mean_only[0]) * 2 == len(middle[0])
    assert not np.allclose(list(middle[0].values()), list(low[0].values()))
    alone = [get_feature_spec(f"ssl:{folder}").describe(clip) for clip in speech]
    for together, single in zip(middle, alone, strict=True):
        assert together == single  # a clip's numbers never depend on its batch-mates
    joined = np.concatenate([clip.samples for clip in speech])  # over 4 s: two chunks
    long = Clip(joined, 16000, 16000, 1)
    whole = get_feature_spec(f"ssl:{folder}").describe(long)
    chunked = get_feature_spec(f"ssl:{folder}?chunk_s=2").describe(long)
    assert not np.allclose(list(chunked.values()), list(whole.values()))


@pytest.mark.parametrize(("architecture", "seconds"), [("whisper", 30.5), ("wavlm", 20.5)])
def test_chunks_cover_every_sample_within_the_window(encoders, architecture, seconds):
    """Whisper keeps a short tail as its own chunk (its 30 s window would cut a longer one);
    the others let it join the chunk before it."""
    encoder = LoadedEncoder(encoders[architecture], EncoderOptions(chunk_s=30))
    samples = np.zeros(int(seconds * 16000), dtype=np.float32)
    chunks = encoder._chunks(samples)
    assert sum(len(chunk) for chunk in chunks) == len(samples)
    if architecture == "whisper":
        assert [len(c) / 16000 for c in chunks] == [30.0, 0.5]
    else:
        assert len(chunks) == 1


def test_int8_runtime_stays_close_to_float32(encoders, speech):
    folder = encoders["hubert"]
    exact = get_feature_spec(f"ssl:{folder}").describe_many(speech)
    fast = get_feature_spec(f"ssl:{folder}?runtime=int8").describe_many(speech)
    for a, b in zip(exact, fast, strict=True):
        a, b = np.array(list(a.values())), np.array(list(b.values()))
        assert not np.array_equal(a, b)  # really quantised
        assert np.corrcoef(a, b)[0, 1] > 0.99


def test_bad_names_are_refused_before_any_work():
    with pytest.raises(ValueError, match="unknown option"):
        parse_ssl_name("ssl:x/y?layer=3")
    with pytest.raises(ValueError, match="pooling"):
        parse_ssl_name("ssl:x/y?pooling=max")
    with pytest.raises(ValueError, match="at most one ssl"):
        feature_set_parts("ssl:a/b+ssl:c/d")
    assert parse_ssl_name("ssl:x/y?layers=3,5&runtime=int8")[1].layers == (3, 5)


def test_a_missing_encoder_offline_is_one_clear_error(tmp_path, shared_data):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    command = [
        str(Path(sys.executable).parent / "ser"),
        "extract",
        str(shared_data / "tess_sample"),
    ]
    result = subprocess.run(
        [*command, "--features", "ssl:someone/no-such-encoder", "--out", str(tmp_path / "o")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stdout.split())
    assert "'someone/no-such-encoder' is not in the Hugging Face cache" in message
    assert "hf download someone/no-such-encoder" in message
    assert "Traceback" not in result.stdout + result.stderr
    with pytest.raises(EncoderNotFound, match="does not exist"):
        locate_encoder(str(tmp_path / "nowhere"))


def test_ser_extract_runs_offline_on_a_model_folder(tmp_path, encoders, shared_data):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = tmp_path / "feats"
    features = f"ssl:{encoders['hubert']}"
    data = str(shared_data / "tess_sample")
    command = [str(Path(sys.executable).parent / "ser"), "extract", data]
    result = subprocess.run(
        [*command, "--features", features, "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = pd.read_parquet(out / "features.parquet")
    assert len(table) == 60 and table.filter(like="ssl_std_").shape[1] == 32


def test_the_hub_cache_gives_the_snapshot_revision(tmp_path, encoders, monkeypatch):
    """A model in the hub cache layout is found offline by its id, with its commit."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--tiny-wavlm" / "snapshots" / commit
    shutil.copytree(encoders["wavlm"], snapshot)
    (cache / "models--someone--tiny-wavlm" / "refs").mkdir()
    (cache / "models--someone--tiny-wavlm" / "refs" / "main").write_text(commit)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    identity = locate_encoder("someone/tiny-wavlm")
    assert identity.revision == commit and identity.folder == snapshot
    assert identity.checksum == locate_encoder(str(encoders["wavlm"])).checksum


def test_the_cache_key_changes_with_the_encoder_weights(tmp_path, shared_data):
    folder = write_random_encoder(tmp_path / "enc", "wav2vec2", seed=0)
    data = shared_data / "tess_sample"
    name = f"ssl:{folder}?layers=1"
    first = extract_features([str(data)], str(tmp_path / "out"), name, workers=1)
    again = extract_features([str(data)], str(tmp_path / "out"), name, workers=1)
    assert first.extracted > 0 and again.extracted == 0 and again.cached == first.extracted
    write_random_encoder(folder, "wav2vec2", seed=1)  # same name, other weights
    changed = extract_features([str(data)], str(tmp_path / "out"), name, workers=1)
    assert changed.extracted == first.extracted and changed.cached == 0


def test_a_carried_encoder_is_checked_against_its_checksum(tmp_path, encoders):
    identity = locate_encoder(str(encoders["hubert"]))
    copy = carry_encoder(identity, tmp_path)
    assert [c.checksum for c in carried_encoders(tmp_path)] == [identity.checksum]
    listed = json.loads((tmp_path / "encoders.json").read_text())
    assert listed[0]["weights_sha256"] == identity.checksum
    weights = next(copy.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(EncoderNotFound, match="changed since the model was trained"):
        carried_encoders(tmp_path)


def test_a_registered_copy_serves_until_its_folder_goes(tmp_path, encoders):
    source = str(encoders["wav2vec2"])
    copy = carry_encoder(locate_encoder(source), tmp_path / "model")
    use_carried_encoders(tmp_path / "model")
    assert locate_encoder(source).folder == copy
    shutil.rmtree(tmp_path / "model")  # e.g. the scratch folder of a finished training run
    assert locate_encoder(source).folder == encoders["wav2vec2"].resolve()


def test_combined_with_the_functionals_in_one_table(encoders, shared_data):
    name = f"ssl:{encoders['data2vec-audio']}?layers=2+spectral_prosodic_speech"
    path = shared_data / CLIPS[0]
    job = ClipJob(str(path), content_digest(path), _labels())
    (outcome,) = extract_batch([job], name)
    assert outcome.ok, outcome.reason
    columns = list(outcome.features)
    assert any(c.startswith("ssl_mean_") for c in columns)
    assert any(not c.startswith("ssl_") for c in columns)


def _labels():
    from ser_features.corpora import ClipLabels

    return ClipLabels(corpus="ravdess", speaker="ravdess_02", gender="male", emotion="angry")


@pytest.mark.slow
def test_extract_train_promote_serve_predict_on_an_encoder(tmp_path):
    """The whole path on a tiny WavLM: trained (a linear model and H2O AutoML), the better
    one promoted, served by a real
    ``mlflow models serve`` from the copy the model carries (the original folder is gone,
    the hub offline), answering with the same probabilities as the in-process model."""
    folder = write_random_encoder(tmp_path / "wavlm", "wavlm")
    name = f"ssl:{folder}?layers=1-3"
    with demo_store(tmp_path, n_speakers=3, chdir=False) as uri:
        config = {
            "name": "ssl-e2e",
            "data": {
                "folders": [str(tmp_path / "demo")],
                "features": name,
                "features_dir": str(tmp_path / "features"),
            },
            "protocol": {"test_speakers": ["synthetic_demo_03"]},
            "trainers": {
                "sklearn_linear": {"param_grid": {"C": [0.1]}, "cv_folds": 2},
                "h2o_automl": {
                    "max_runtime_secs": 30,
                    "max_models": 2,
                    "nfolds": 2,
                    "max_mem_size": "1G",
                    "exclude_algos": ["DeepLearning", "StackedEnsemble", "XGBoost"],
                },
            },
            "tracking": {"experiment": "ssl-e2e"},
            "registry": {"model_name": "ssl-e2e"},
        }
        path = tmp_path / "ssl.yaml"
        path.write_text(yaml.safe_dump(config))
        report = train_models(config_path=str(path))
        assert [f.status for f in report.families] == ["FINISHED"] * 2, report.families
        decision = promote_model(config_path=str(path), tracking_uri=uri)
        assert decision.promoted
        import mlflow

        identity = locate_encoder(str(folder))
        for family in report.families:  # AutoML trains on the embeddings like every family
            run = mlflow.get_run(family.run_id)
            assert run.data.params["encoder.weights_sha256"] == identity.checksum
            assert run.data.params["encoder.revision"] == "local folder"
        clip = next((tmp_path / "demo").rglob("*.wav"))
        samples, rate = sf.read(clip, dtype="float32")
        shutil.rmtree(folder)  # the served model must not need the original
        port = free_port()
        env = {**serving_environment(uri), "HF_HUB_OFFLINE": "1"}
        with running(
            serve_command("ssl-e2e", port=port),
            env=env,
            log_path=tmp_path / "server.log",
            ready_url=f"http://127.0.0.1:{port}/ping",
        ):
            body = {"dataframe_records": [{"audio": wav_b64(samples, rate)}] * 2}
            response = requests.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=120)
        assert response.status_code == 200, response.text
        served = response.json()["predictions"]
        assert len(served) == 2 and served[0]["emotion"] in served[0]["probabilities"]
        model = mlflow.pyfunc.load_model("models:/ssl-e2e@champion")
        local = model.predict(pd.DataFrame({"audio": [wav_b64(samples, rate)]})).iloc[0]
        for label, p in local["probabilities"].items():
            assert served[0]["probabilities"][label] == pytest.approx(p, abs=1e-6)
