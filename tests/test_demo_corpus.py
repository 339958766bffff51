"""Tests for the synthetic RAVDESS-style demo corpus."""

from __future__ import annotations

import json
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from ser_features.demo_corpus import generate_demo_corpus
from ser_features.errors import AudioError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("demo")
    return out, generate_demo_corpus(out, n_speakers=2)


def _fields(path: Path) -> dict[str, int]:
    parts = path.stem.split("-")
    assert len(parts) == 7 and all(len(p) == 2 and p.isdigit() for p in parts), path.name
    keys = ("modality", "channel", "emotion", "intensity", "statement", "repetition", "actor")
    return dict(zip(keys, map(int, parts), strict=True))


def _mean_f0(path: Path) -> float:
    y, sr = sf.read(path)
    f0 = librosa.yin(y, fmin=60, fmax=500, sr=sr, frame_length=2048, hop_length=512)
    rms = librosa.feature.rms(y=y, frame_length=2048, hop_length=512)[0]
    return float(np.mean(f0[rms > 0.3 * rms.max()]))


def _clip(out: Path, actor: int, emotion: int, intensity: int, statement: int) -> Path:
    name = f"03-01-{emotion:02d}-{intensity:02d}-{statement:02d}-01-{actor:02d}.wav"
    return out / f"Actor_{actor:02d}" / name


def test_file_count_and_names(corpus):
    out, paths = corpus
    assert len(paths) == 60
    assert sorted(paths) == sorted(out.glob("Actor_*/*.wav"))
    combos = set()
    for path in paths:
        f = _fields(path)
        assert (f["modality"], f["channel"], f["repetition"]) == (3, 1, 1)
        assert path.parent.name == f"Actor_{f['actor']:02d}"
        assert 1 <= f["emotion"] <= 8 and f["statement"] in (1, 2)
        assert f["intensity"] == 1 if f["emotion"] == 1 else f["intensity"] in (1, 2)
        combos.add((f["actor"], f["emotion"], f["intensity"], f["statement"]))
    assert len(combos) == 60
    assert {a for a, *_ in combos} == {1, 2}


def test_metadata_files(corpus):
    out, _ = corpus
    meta = json.loads((out / "CORPUS.json").read_text(encoding="utf-8"))
    assert meta == {
        "corpus": "synthetic_demo",
        "synthetic": True,
        "generator": "ser_features.demo_corpus",
        "seed": 0,
        "description": (
            "Synthetic source-filter speech; not real recordings. Use for demos and tests only."
        ),
    }
    readme = (out / "README.txt").read_text(encoding="utf-8")
    assert "not real recordings" in readme and "demos and tests only" in readme


def test_audio_is_sane(corpus):
    _, paths = corpus
    for path in paths:
        info = sf.info(path)
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        y, sr = sf.read(path)
        assert np.all(np.isfinite(y))
        assert np.max(np.abs(y)) <= 1.0
        assert 1.2 <= y.size / sr <= 2.0
        assert np.sqrt(np.mean(y**2)) > 10 ** (-40 / 20)  # not silent
        lead, tail = y[: int(0.1 * sr)], y[-int(0.1 * sr) :]
        for pad in (lead, tail):  # low-level noise, not digital silence
            assert np.count_nonzero(pad) > 0.5 * pad.size
            assert np.sqrt(np.mean(pad**2)) < 10 ** (-45 / 20)


def test_deterministic_and_seeded(corpus, tmp_path):
    out, _ = corpus
    again = generate_demo_corpus(tmp_path / "again", n_speakers=1)
    assert len(again) == 30
    for path in again:  # Actor_01 does not depend on how many speakers are generated
        assert path.read_bytes() == (out / "Actor_01" / path.name).read_bytes()
    before = [p.read_bytes() for p in again]
    assert generate_demo_corpus(tmp_path / "again", n_speakers=1) == again  # overwrite is fine
    assert [p.read_bytes() for p in again] == before
    other = generate_demo_corpus(tmp_path / "other", n_speakers=1, seed=1)
    assert other[0].read_bytes() != again[0].read_bytes()
    assert json.loads((tmp_path / "other" / "CORPUS.json").read_text())["seed"] == 1


def test_prosody_known_answers(corpus):
    out, _ = corpus
    for actor in (1, 2):
        angry = np.mean([_mean_f0(_clip(out, actor, 5, 2, s)) for s in (1, 2)])
        sad = np.mean([_mean_f0(_clip(out, actor, 4, i, s)) for i in (1, 2) for s in (1, 2)])
        assert angry > 1.15 * sad, (actor, angry, sad)
    male = np.mean([_mean_f0(_clip(out, 1, 1, 1, s)) for s in (1, 2)])
    female = np.mean([_mean_f0(_clip(out, 2, 1, 1, s)) for s in (1, 2)])
    assert 80 < male < 150 < female < 300, (male, female)


def test_strong_angry_is_louder_than_sad(corpus):
    out, _ = corpus

    def rms(path: Path) -> float:
        return float(np.sqrt(np.mean(sf.read(path)[0] ** 2)))

    for actor in (1, 2):
        assert rms(_clip(out, actor, 5, 2, 1)) > 2 * rms(_clip(out, actor, 4, 2, 1))


@pytest.mark.parametrize(
    "kwargs", [{"n_speakers": 0}, {"n_speakers": 25}, {"sample_rate": 4000}, {"seed": -1}]
)
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(AudioError):
        generate_demo_corpus(tmp_path, **kwargs)
