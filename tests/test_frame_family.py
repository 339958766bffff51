"""The ``logmel_frames`` feature set and the frame-level ``frame_crnn`` family."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_features import frame_blobs

from experiments.families import OptionsError, get_family
from experiments.families.frame_nets import FrameCRNNTrainer, FrameLayout
from experiments.families.predictors import load_predictor, save_predictor
from ser_features.audio import Clip, load_audio
from ser_features.corpora import parse_path
from ser_features.demo_corpus import generate_demo_corpus
from ser_features.feature_sets import get_feature_spec
from ser_features.feature_sets.logmel_frames import (
    COLUMNS,
    MAX_FRAMES,
    N_FRAMES_COLUMN,
    N_MELS,
    PAD_VALUE,
    logmel_frames,
)

RATE = 16000
#: Given in a non-canonical order on purpose.
LABELS = ["sad", "angry", "neutral"]
CANONICAL = ["neutral", "sad", "angry"]
GRID = (30, 12)  # frames x bands of the synthetic tables
TINY = {
    "channels": (8, 8),
    "time_pooling": (2, 1),
    "rnn_hidden": 8,
    "attention_dim": 8,
    "dropout": 0.1,
    "epochs": 25,
    "batch_size": 16,
    "patience": 8,
    "learning_rate": 5e-3,
    "time_mask_width": 3,
    "freq_mask_width": 2,
}


def clip(samples: np.ndarray) -> Clip:
    return Clip(
        samples=samples.astype(np.float32),
        sample_rate=RATE,
        original_sample_rate=RATE,
        original_channels=1,
    )


def frame_table(
    *, n_speakers: int = 6, per_class: int = 8, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Frame tables named like ``logmel_frames`` on the smaller :data:`GRID`."""
    n_frames, n_bands = GRID
    return frame_blobs(
        LABELS,
        n_speakers=n_speakers,
        per_class=per_class,
        n_frames=n_frames,
        n_bands=n_bands,
        seed=seed,
    )


@pytest.fixture(scope="module")
def data() -> dict[str, object]:
    table, labels, speakers = frame_table()
    test = np.isin(speakers, ["spk4", "spk5"])
    return {
        "x_train": table[~test].reset_index(drop=True),
        "y_train": labels[~test],
        "g_train": speakers[~test],
        "x_test": table[test].reset_index(drop=True),
        "y_test": labels[test],
    }


@pytest.fixture(scope="module")
def fitted(data) -> FrameCRNNTrainer:
    return FrameCRNNTrainer(**TINY).fit(data["x_train"], data["y_train"], data["g_train"])


# --------------------------------------------------------------------------- feature set


def test_logmel_frames_has_fixed_padded_columns():
    spec = get_feature_spec("logmel_frames")
    t = np.arange(RATE) / RATE
    short = spec.describe(clip(0.3 * np.sin(2 * np.pi * 220 * t)))
    assert tuple(short) == COLUMNS and len(COLUMNS) == MAX_FRAMES * N_MELS + 1
    assert COLUMNS[:2] == ("lm_f000_b00", "lm_f000_b01") and COLUMNS[-2] == "lm_f199_b39"
    n = int(short[N_FRAMES_COLUMN])
    assert n == 26  # 101 centred 10 ms frames pooled by four
    grid = np.array([short[c] for c in COLUMNS[:-1]]).reshape(MAX_FRAMES, N_MELS)
    assert np.all(grid[n:] == PAD_VALUE) and np.all(np.isfinite(grid[:n]))
    assert grid[:n].max() - grid[:n].min() <= 80.0 + 1e-9  # 80 dB floor below the peak
    # A clip longer than 8 s keeps its central 200 frames.
    rng = np.random.default_rng(0)
    long = rng.normal(scale=0.1, size=12 * RATE) * np.linspace(0.1, 1.0, 12 * RATE)
    described = spec.describe(clip(long))
    assert described[N_FRAMES_COLUMN] == MAX_FRAMES
    full = logmel_frames(long.astype(np.float32))
    start = (len(full) - MAX_FRAMES) // 2
    values = np.array([described[c] for c in COLUMNS[:-1]]).reshape(MAX_FRAMES, N_MELS)
    np.testing.assert_allclose(values, full[start : start + MAX_FRAMES])


def test_describing_a_4s_clip_costs_a_few_ms():
    spec = get_feature_spec("logmel_frames")
    samples = np.random.default_rng(1).normal(scale=0.1, size=4 * RATE)
    spec.describe(clip(samples))
    started = time.perf_counter()
    for _ in range(10):
        spec.describe(clip(samples))
    assert (time.perf_counter() - started) / 10 < 0.05  # ~3 ms here; lenient for busy CI


# --------------------------------------------------------------------------- trainer


def test_layout_is_parsed_from_names_in_any_order(data):
    table = data["x_train"]
    shuffled = table[list(np.random.default_rng(0).permutation(table.columns))]
    shuffled = shuffled.assign(duration_s=1.0, other_f1=2.0)  # unrelated columns
    layout = FrameLayout.from_columns(list(shuffled.columns))
    assert (layout.prefix, layout.max_frames, layout.n_bands) == ("lm", *GRID)
    x, lengths = layout.arrays(shuffled)
    np.testing.assert_array_equal(lengths, table[N_FRAMES_COLUMN].to_numpy().astype(int))
    assert x.shape == (len(table), *GRID)
    with pytest.raises(ValueError, match="frame columns"):
        FrameLayout.from_columns(["mfcc_00", "duration_s"])


def test_fit_predicts_probabilities_in_canonical_order(fitted, data):
    assert fitted.family == "frame_crnn"
    assert fitted.classes_ == CANONICAL
    proba = fitted.predict_proba(data["x_test"])
    assert proba.shape == (len(data["x_test"]), 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    predicted = np.asarray(fitted.classes_)[proba.argmax(axis=1)]
    recalls = [np.mean(predicted[data["y_test"] == c] == c) for c in CANONICAL]
    assert np.mean(recalls) > 0.6  # held-out speakers; chance is 0.33
    params = fitted.params()
    assert params["validation_strategy"] == "group" and params["n_validation"] > 0
    assert 1 <= params["best_epoch"] <= params["epochs_trained"] <= TINY["epochs"]


def test_padding_is_masked(fitted, data):
    table = data["x_test"]
    reference = fitted.predict_proba(table)
    # Garbage in the padding cells changes nothing.
    noisy = table.copy()
    n_frames, n_bands = GRID
    rng = np.random.default_rng(3)
    for i, length in enumerate(table[N_FRAMES_COLUMN].astype(int)):
        cells = [f"lm_f{f:03d}_b{b:02d}" for f in range(length, n_frames) for b in range(n_bands)]
        noisy.loc[i, cells] = rng.normal(scale=50.0, size=len(cells))
    np.testing.assert_allclose(fitted.predict_proba(noisy), reference, atol=1e-6)
    # Alone (no padding beyond its own length) or batched with longer clips: same answer.
    shortest = int(np.argmin(table[N_FRAMES_COLUMN]))
    alone = fitted.predict_proba(table.iloc[[shortest]])
    np.testing.assert_allclose(alone[0], reference[shortest], atol=1e-6)
    # Column order does not matter either.
    shuffled = table[list(rng.permutation(table.columns))]
    np.testing.assert_allclose(fitted.predict_proba(shuffled), reference, atol=1e-6)


def test_save_and_load_give_the_same_answers_without_pickle(fitted, data, tmp_path):
    folder = fitted.save(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["trainer.json", "weights.npz"]
    with np.load(folder / "weights.npz", allow_pickle=False) as arrays:
        assert arrays.files
    meta = json.loads((folder / "trainer.json").read_text())
    assert meta["fitted"]["classes_"] == CANONICAL
    loaded = FrameCRNNTrainer.load(folder)
    np.testing.assert_array_equal(
        loaded.predict_proba(data["x_test"]), fitted.predict_proba(data["x_test"])
    )
    assert loaded.params() == fitted.params()


#: Run in a fresh interpreter: in the test session, Prefect's background threads (events and
#: log workers) may draw from Python's global ``random`` at any moment.
SEEDED_AND_ALONE = """
import random, sys
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
from test_frame_family import TINY, frame_table
from experiments.families.frame_nets import FrameCRNNTrainer
table, labels, speakers = frame_table()
test = np.isin(speakers, ["spk4", "spk5"])
random.seed(11)
np.random.seed(11)
torch.manual_seed(11)
states = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
threads = torch.get_num_threads()
options = {**TINY, "epochs": 3}
x, y, g = table[~test].reset_index(drop=True), labels[~test], speakers[~test]
first = FrameCRNNTrainer(**options, n_threads=1).fit(x, y, g)
second = FrameCRNNTrainer(**options, n_threads=1).fit(x, y, g)
x_test = table[test].reset_index(drop=True)
np.testing.assert_array_equal(first.predict_proba(x_test), second.predict_proba(x_test))
assert random.getstate() == states[0], "Python's random state changed"
np.testing.assert_array_equal(np.random.get_state()[1], states[1])
assert torch.equal(torch.get_rng_state(), states[2]), "torch's RNG state changed"
assert torch.get_num_threads() == threads, "torch's thread count changed"
print("seeded and alone")
"""


def test_fit_is_seeded_and_leaves_global_state_alone():
    result = subprocess.run(
        [sys.executable, "-c", SEEDED_AND_ALONE, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "KERAS_BACKEND": "torch"},
    )
    assert result.returncode == 0 and "seeded and alone" in result.stdout, result.stderr[-3000:]


def test_family_contract(fitted, data, tmp_path):
    family = get_family("frame_crnn")
    assert family.session_companion is False
    with pytest.raises(OptionsError, match="unknown option 'hidden_units'"):
        family.validate({"hidden_units": [8]})
    with pytest.raises(OptionsError, match="epochs"):
        family.validate({"epochs": "many"})
    checked = family.validate({"channels": [8, 8], "mixup_alpha": 0})
    assert checked["channels"] == (8, 8)
    trainer = family.trainer({"epochs": 4, "channels": [4]}, seed=5)
    assert isinstance(trainer, FrameCRNNTrainer)
    assert (trainer.epochs, trainer.channels, trainer.seed) == (4, (4,), 5)
    family.save(fitted, tmp_path)
    loaded = family.load(tmp_path, {"classes": fitted.classes_})
    np.testing.assert_array_equal(
        loaded.predict_proba(data["x_test"]), fitted.predict_proba(data["x_test"])
    )
    predictor = load_predictor(save_predictor(fitted, tmp_path / "p", feature_set="logmel_frames"))
    assert predictor.family == "frame_crnn" and predictor.classes == CANONICAL
    np.testing.assert_allclose(
        predictor.predict_proba(data["x_test"]), fitted.predict_proba(data["x_test"])
    )


def test_end_to_end_on_described_demo_clips(tmp_path):
    spec = get_feature_spec("logmel_frames")
    paths = generate_demo_corpus(tmp_path / "demo", n_speakers=2)
    rows, labels, speakers = [], [], []
    for path in paths:
        tags = parse_path(path)
        if tags.emotion not in ("neutral", "angry", "sad"):
            continue
        rows.append(spec.describe(load_audio(path, options=spec.load)))
        labels.append(tags.emotion)
        speakers.append(tags.speaker)
    table = pd.DataFrame(rows)
    assert len(table) == 20 and table.shape[1] == len(COLUMNS)
    trainer = get_family("frame_crnn").trainer({**TINY, "epochs": 2}, seed=0)
    trainer.fit(table, np.array(labels), np.array(speakers))
    proba = trainer.predict_proba(table)
    assert trainer.classes_ == CANONICAL and proba.shape == (20, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)


def test_augmented_batches_keep_padding_and_bounds(data):
    options = {**TINY, "epochs": 2, "band_shift": 2, "time_stretch": 0.3, "mixup_alpha": 0.4}
    options["pooling"] = "attention_stats"
    trainer = FrameCRNNTrainer(**options).fit(data["x_train"], data["y_train"], data["g_train"])
    x, lengths = trainer._inputs(data["x_train"])
    onehot = np.eye(3, dtype=np.float32)[np.zeros(len(x), dtype=int)]
    rng = np.random.default_rng(0)
    xb, lb, yb = trainer._augmented_batch(x, lengths, onehot, np.arange(16), rng)
    assert xb.shape[0] == 16 and xb.shape[1] == int(lb.max()) <= GRID[0]
    assert bool((lb >= 1).all())
    padded = torch.arange(xb.shape[1])[None, :] >= lb[:, None]
    assert float(xb[padded].abs().sum()) == 0.0
    np.testing.assert_allclose(yb.sum(dim=1).numpy(), 1.0, atol=1e-6)
    # The statistics pooling masks padding as well.
    table = data["x_test"]
    shortest = int(np.argmin(table[N_FRAMES_COLUMN]))
    np.testing.assert_allclose(
        trainer.predict_proba(table.iloc[[shortest]])[0],
        trainer.predict_proba(table)[shortest],
        atol=1e-6,
    )
