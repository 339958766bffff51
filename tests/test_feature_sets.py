"""Feature sets: known answers on synthetic signals, determinism, and the seed180 reference."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from seed_recipe import published_recipe

from ser_features.audio import Clip, load_audio
from ser_features.feature_sets import FEATURE_SETS, get_feature_spec
from ser_features.functionals import summarise
from ser_features.pitch import track_pitch
from ser_features.spectral import SpectralAnalysis

RATE = 16000


def make_clip(samples: np.ndarray) -> Clip:
    return Clip(samples.astype(np.float32), RATE, RATE, 1)


def harmonic_tone(f0: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 6)).astype(np.float32)


def test_rms_of_a_constant_is_the_constant():
    analysis = SpectralAnalysis(np.full(RATE, 0.25, dtype=np.float32), RATE, n_fft=512)
    assert np.median(analysis.frame_rms) == pytest.approx(0.25, rel=0.02)


def test_zcr_of_a_square_wave_counts_its_flips():
    spec = get_feature_spec("spectral_prosodic")
    period = 80  # 200 Hz square wave: 400 zero crossings a second
    square = np.tile(np.r_[np.full(period // 2, 0.5), np.full(period // 2, -0.5)], 200)
    features = spec.describe(make_clip(square))
    assert features["zcr_p50"] == pytest.approx(2 / period, rel=0.05)


@pytest.mark.parametrize("f0", [110.0, 220.0, 330.0])
def test_pitch_of_a_harmonic_tone(f0):
    track = track_pitch(harmonic_tone(f0), RATE)
    assert track.voiced.mean() > 0.9
    assert np.nanmedian(track.f0_hz) == pytest.approx(f0, rel=0.01)


def test_noise_is_not_voiced():
    noise = np.random.default_rng(0).normal(scale=0.1, size=RATE).astype(np.float32)
    assert track_pitch(noise, RATE).voiced.mean() < 0.1


def test_functionals_known_answers():
    result = summarise(np.array([[1.0, 2.0, 3.0, 4.0, np.nan]]), ["x"])
    assert result["x_mean"] == pytest.approx(2.5)
    assert result["x_p50"] == pytest.approx(2.5)
    assert result["x_slope"] > 0
    empty = summarise(np.array([[np.nan, np.nan]]), ["y"])
    assert set(empty.values()) == {0.0}


@pytest.mark.parametrize("name", sorted(FEATURE_SETS))
def test_every_set_is_deterministic_finite_and_fixed_width(name):
    spec = get_feature_spec(name)
    rng = np.random.default_rng(1)
    short = harmonic_tone(180.0, 0.6) + rng.normal(scale=0.01, size=int(0.6 * RATE))
    long = harmonic_tone(240.0, 2.5)
    first, second = spec.describe(make_clip(short)), spec.describe(make_clip(short))
    other = spec.describe(make_clip(long))
    assert first == second
    assert list(first) == list(other)
    assert all(np.isfinite(v) for v in first.values())
    assert spec.tag == f"{name}@v{spec.version}"


def test_seed180_matches_the_published_recipe(shared_data):
    spec = get_feature_spec("seed180")
    files = sorted((shared_data / "ravdess" / "Actor_03").glob("*.flac"))[:5]
    for path in files:
        ours = np.array(list(spec.describe(load_audio(path, options=spec.load)).values()))
        reference = published_recipe(path)
        assert ours.shape == (180,)
        np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5)


def test_levelled_set_ignores_the_recording_gain(shared_data):
    path = sorted((shared_data / "ravdess" / "Actor_05").glob("*.flac"))[9]
    samples, rate = sf.read(path, dtype="float32")

    def describe(name: str, gain: float) -> dict[str, float]:
        spec = get_feature_spec(name)
        buffer = io.BytesIO()
        sf.write(buffer, samples * gain, rate, format="WAV", subtype="FLOAT")
        return spec.describe(load_audio(buffer.getvalue(), options=spec.load))

    loud, quiet = (
        describe("spectral_prosodic_levelled", 1.0),
        describe("spectral_prosodic_levelled", 0.3),
    )
    plain_loud, plain_quiet = describe("spectral_prosodic", 1.0), describe("spectral_prosodic", 0.3)
    assert list(loud) == list(plain_loud)  # the same columns as the plain set
    np.testing.assert_allclose(list(quiet.values()), list(loud.values()), rtol=1e-3, atol=1e-4)
    # the plain set measures level in absolute dB: a gain of 0.3 moves it by 10.5 dB
    drop = plain_loud["rms_db_mean"] - plain_quiet["rms_db_mean"]
    assert drop == pytest.approx(20 * np.log10(1 / 0.3), abs=1.0)
