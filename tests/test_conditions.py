"""Simulated recording conditions and voice activity detection, on real speech."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from flows.extract import extract_features
from ser_features.audio import SPEECH_LEVELLED, load_audio
from ser_features.conditions import (
    CONDITIONS,
    Context,
    active_level,
    as_wav_bytes,
    simulate,
    snr_db,
    training_condition,
)
from ser_features.speech_activity import speech_spans

ANGRY = "ravdess/Actor_03/03-01-05-02-01-01-03.flac"
OTHERS = [f"ravdess/Actor_05/03-01-0{e}-01-01-01-05.flac" for e in range(1, 9)]


@pytest.fixture(scope="module")
def speech(shared_data):
    samples, rate = sf.read(shared_data / ANGRY, dtype="float32")
    return samples, rate


@pytest.fixture(scope="module")
def pool(shared_data):
    return [sf.read(shared_data / path, dtype="float32")[0] for path in OTHERS]


@pytest.mark.parametrize("name", sorted(CONDITIONS))
def test_every_condition_is_deterministic_for_a_seed(speech, pool, name):
    samples, rate = speech
    first, first_rate = simulate(name, samples, rate, seed=7, context=Context(pool))
    again, _ = simulate(name, samples, rate, seed=7, context=Context(pool))
    np.testing.assert_array_equal(first, again)
    assert np.all(np.isfinite(first)) and np.max(np.abs(first)) <= 1.0
    assert abs(len(first) / first_rate - len(samples) / rate) < 0.15
    if name != "clean":
        assert not np.array_equal(first, samples)
    if "noise" in name or "babble" in name:
        other, _ = simulate(name, samples, rate, seed=8, context=Context(pool))
        assert not np.array_equal(first, other)


def test_a_room_is_the_same_room_in_every_process():
    import subprocess
    import sys

    code = (
        "from ser_features.conditions import room_impulse; import hashlib; "
        "print(hashlib.sha1(room_impulse(0.6, 16000, 3).tobytes()).hexdigest())"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()[-1]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


@pytest.mark.parametrize("snr", [30, 20, 10, 5])
def test_noise_lands_at_its_snr_against_the_active_speech_level(speech, snr):
    samples, rate = speech
    noisy, _ = simulate(f"pink_noise_{snr}db", samples, rate, seed=1)
    assert snr_db(samples, noisy - samples, rate) == pytest.approx(snr, abs=0.01)
    # the active level ignores the clip's silent lead-in: louder than the plain mean power
    assert active_level(samples, rate) > 1.5 * np.mean(samples.astype(np.float64) ** 2)


def test_babble_needs_other_speakers_and_reaches_its_snr(speech, pool):
    samples, rate = speech
    with pytest.raises(ValueError, match="pool of other speakers"):
        simulate("babble_10db", samples, rate, seed=1)
    noisy, _ = simulate("babble_10db", samples, rate, seed=1, context=Context(pool))
    assert snr_db(samples, noisy - samples, rate) == pytest.approx(10, abs=0.01)


@pytest.mark.parametrize("name", ["telephone_ulaw", "telephone_gsm"])
def test_telephone_lines_are_8_khz_and_band_limited(speech, name):
    samples, rate = speech
    line, line_rate = simulate(name, samples, rate, seed=1)
    assert line_rate == 8000
    spectrum = np.abs(np.fft.rfft(line)) ** 2
    frequency = np.fft.rfftfreq(len(line), 1 / line_rate)
    assert spectrum[frequency < 250].sum() < 0.02 * spectrum.sum()
    decoded, decoded_rate = sf.read(__import__("io").BytesIO(as_wav_bytes(line, line_rate)))
    assert decoded_rate == 8000 and len(decoded) == len(line)


def test_training_draws_are_seeded_and_name_what_they_did(speech):
    samples, rate = speech
    drawn = [training_condition(samples, rate, np.random.default_rng(s))[1] for s in range(40)]
    again = [training_condition(samples, rate, np.random.default_rng(s))[1] for s in range(40)]
    assert drawn == again
    kinds = {what.split()[0] for what in drawn}
    assert {"noise", "room", "telephone"} <= kinds
    assert not any("babble" in what for what in drawn)  # babble stays unseen in training


def test_the_detector_finds_quiet_speech_in_noise_and_no_speech_in_noise_alone(speech):
    samples, rate = speech
    clean = speech_spans(samples, rate)
    assert len(clean) >= 1 and 0.5 < clean[0][0] < 1.5  # RAVDESS clips open with silence
    quiet = samples * 10 ** (-30 / 20)  # 30 dB quieter: a level threshold would lose it
    noisy, _ = simulate("pink_noise_10db", quiet, rate, seed=1)
    found = speech_spans(noisy, rate)
    assert found and abs(found[0][0] - clean[0][0]) < 0.3
    noise_only = np.random.default_rng(0).standard_normal(3 * rate).astype(np.float32) * 0.05
    assert speech_spans(noise_only, rate) == []


def test_a_clip_with_no_speech_heard_is_trimmed_by_level_instead(tmp_path):
    noise = np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.05
    path = tmp_path / "fan.wav"
    sf.write(path, np.concatenate([np.zeros(16000, np.float32), noise]), 16000)
    clip = load_audio(path, options=SPEECH_LEVELLED)
    assert clip.speech is None
    assert clip.duration_s == pytest.approx(2.0, abs=0.05)  # the digital silence is cut


def test_cut_to_speech_drops_the_noise_around_it(shared_data, speech):
    samples, rate = speech
    clip = load_audio(shared_data / ANGRY, options=SPEECH_LEVELLED)
    spans = speech_spans(samples, rate)
    assert clip.speech is not None and len(clip.speech) * 512 == len(clip.samples)
    assert clip.duration_s == pytest.approx(spans[-1][1] - spans[0][0], abs=0.15)


@pytest.mark.usefixtures("prefect_server")
def test_recording_condition_copies_are_described_as_recorded(shared_data, tmp_path):
    data = tmp_path / "audio" / "Actor_03"
    data.mkdir(parents=True)
    for name in sorted((shared_data / "ravdess" / "Actor_03").iterdir())[:6]:
        (data / name.name).write_bytes(name.read_bytes())
    clean = extract_features(
        [str(data.parent)], str(tmp_path / "clean"), feature_set="spectral_prosodic_speech"
    )
    copies = extract_features(
        [str(data.parent)],
        str(tmp_path / "copies"),
        feature_set="spectral_prosodic_speech",
        augmentation="recording_conditions",
    )
    assert (clean.rows, copies.rows) == (6, 6)
    import pandas as pd

    source = pd.read_parquet(tmp_path / "clean" / "features.parquet")
    copy = pd.read_parquet(tmp_path / "copies" / "features.parquet")
    assert copy["path"].tolist() == source["path"].tolist()
    assert (copy["mfcc_00_mean"] != source["mfcc_00_mean"]).all()
