"""Loader edge cases: formats, channels, rates, and every kind of bad audio."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from ser_features.audio import (
    LoadOptions,
    add_noise_floor,
    load_audio,
    normalize_loudness,
    trim_silence,
)
from ser_features.errors import AudioError

RATE = 16000


def tone(seconds: float = 1.0, rate: int = RATE, freq: float = 220.0, amp: float = 0.3):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def encode(samples: np.ndarray, rate: int = RATE, fmt: str = "WAV", subtype: str = "PCM_16"):
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "subtype"),
    [
        ("WAV", "PCM_U8"),
        ("WAV", "PCM_16"),
        ("WAV", "PCM_24"),
        ("WAV", "FLOAT"),
        ("FLAC", "PCM_16"),
        ("AIFF", "PCM_16"),
        ("OGG", "VORBIS"),
    ],
)
def test_formats_decode_to_the_same_signal(fmt, subtype):
    clip = load_audio(encode(tone(), fmt=fmt, subtype=subtype))
    assert clip.sample_rate == RATE
    assert clip.samples.dtype == np.float32
    assert abs(clip.duration_s - 1.0) < 0.01
    tolerance = 0.05 if subtype in ("PCM_U8", "VORBIS") else 1e-3
    assert np.sqrt(np.mean(clip.samples**2)) == pytest.approx(0.3 / np.sqrt(2), abs=tolerance)


def test_format_is_detected_from_content_not_extension(tmp_path):
    path = tmp_path / "looks_like.wav"
    path.write_bytes(encode(tone(), fmt="AIFF"))
    assert load_audio(path).original_sample_rate == RATE


def test_stereo_is_downmixed_and_96k_resampled(tmp_path):
    left, right = tone(rate=96000, amp=0.4), tone(rate=96000, amp=0.2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 96000, subtype="PCM_24")
    clip = load_audio(path, options=LoadOptions(sample_rate=RATE))
    assert (clip.original_channels, clip.original_sample_rate) == (2, 96000)
    assert len(clip.samples) == pytest.approx(RATE, abs=2)
    assert np.max(np.abs(clip.samples)) == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 3, "not decodable"),
        (b"hello, this is a text file\n" * 50, "not decodable"),
    ],
)
def test_unusable_bytes_raise_audio_error(payload, reason):
    with pytest.raises(AudioError, match=reason):
        load_audio(payload)


@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("FLAC", "PCM_16")])
def test_truncated_file_is_refused(fmt, subtype):
    whole = encode(tone(2.0), fmt=fmt, subtype=subtype)
    with pytest.raises(AudioError, match=r"truncated|not decodable"):
        load_audio(whole[: len(whole) // 2])


def test_silence_and_non_finite_samples_are_refused():
    with pytest.raises(AudioError, match="silent"):
        load_audio(encode(np.zeros(RATE, dtype=np.float32)))
    broken = tone()
    broken[100] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        load_audio(encode(broken, subtype="FLOAT"))


def test_too_short_after_trimming_is_refused():
    samples = np.zeros(RATE, dtype=np.float32)
    samples[8000:8200] = 0.5
    with pytest.raises(AudioError, match="too short"):
        load_audio(encode(samples), options=LoadOptions(trim_top_db=30))


def test_trim_keeps_the_loud_part_only():
    quiet = np.full(RATE, 1e-4, dtype=np.float32)
    signal = np.concatenate([quiet, tone(0.5), quiet])
    trimmed = trim_silence(signal, top_db=30)
    assert 0.5 <= len(trimmed) / RATE <= 0.6


def test_loudness_normalisation_hits_target_without_clipping():
    out = normalize_loudness(tone(amp=0.01), target_dbfs=-20)
    assert 20 * np.log10(np.sqrt(np.mean(out**2))) == pytest.approx(-20, abs=0.1)
    spiky = np.zeros(RATE, dtype=np.float32)
    spiky[::1000] = 0.5
    assert np.max(np.abs(normalize_loudness(spiky, target_dbfs=-3))) <= 0.99


def test_noise_floor_sits_below_the_speech_and_repeats():
    signal = tone(amp=0.1)
    out = add_noise_floor(signal, below_db=40)
    noise = out - signal
    ratio_db = 10 * np.log10(np.mean(signal**2) / np.mean(noise**2))
    assert ratio_db == pytest.approx(40, abs=0.5)
    np.testing.assert_array_equal(out, add_noise_floor(signal, below_db=40))


def test_levelling_options_apply_after_trimming():
    quiet = np.zeros(RATE // 2, dtype=np.float32)
    options = LoadOptions(trim_top_db=30, normalize_dbfs=-23, noise_floor_db=40)
    clip = load_audio(encode(np.concatenate([quiet, tone(amp=0.01), quiet])), options=options)
    assert len(clip.samples) / RATE == pytest.approx(1.0, abs=0.05)  # digital silence trimmed
    level = 20 * np.log10(np.sqrt(np.mean(clip.samples.astype(np.float64) ** 2)))
    assert level == pytest.approx(-23, abs=0.1)
    assert np.min(np.abs(clip.samples[:100])) > 0  # the floor fills even exact zeros


def test_real_quirky_files_load(shared_data):
    tess = shared_data / "tess_sample"
    aiff = load_audio(tess / "YAF_angry" / "YAF_germ_angry.wav")
    high_rate = load_audio(tess / "OAF_fear" / "OAF_food_fear.wav")
    stereo = load_audio(shared_data / "ravdess" / "Actor_01" / "03-01-02-01-01-02-01.flac")
    assert aiff.sample_rate == high_rate.sample_rate == RATE
    assert high_rate.original_sample_rate == 96000
    assert stereo.original_channels == 2


def test_a_duration_limit_refuses_long_audio_before_decoding_it():
    three_seconds = encode(tone(3.0))
    assert load_audio(three_seconds, max_duration_s=5).duration_s == pytest.approx(3.0, abs=0.1)
    with pytest.raises(AudioError, match="audio is 3 s long; the limit is 2 s"):
        load_audio(three_seconds, max_duration_s=2)
