"""The extraction flow end to end on real corpora: counts, quarantine, cache behaviour."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from flows.extract import extract_features
from ser_features.extraction import MANIFEST_COLUMNS

pytestmark = pytest.mark.usefixtures("prefect_server")


def read(out, name):
    return pd.read_parquet(out / name)


def test_ravdess_gives_1200_rows_and_a_rerun_extracts_nothing(shared_data, tmp_path):
    out = tmp_path / "ravdess"
    first = extract_features([str(shared_data / "ravdess")], str(out), feature_set="seed180")
    features = read(out, "features.parquet")
    assert (first.rows, first.extracted, first.quarantined) == (1200, 1200, 0)
    assert features["speaker"].nunique() == 20
    assert features["emotion"].nunique() == 8
    assert list(features.columns[: len(MANIFEST_COLUMNS)]) == list(MANIFEST_COLUMNS)
    assert features.shape[1] == len(MANIFEST_COLUMNS) + 180
    assert len(read(out, "manifest.parquet")) == 1200
    assert len(read(out, "quarantine.parquet")) == 0
    meta = pq.read_schema(out / "features.parquet").metadata
    assert meta[b"ser.feature_set"] == b"seed180"
    assert meta[b"ser.feature_set_version"] == b"1"

    second = extract_features([str(shared_data / "ravdess")], str(out), feature_set="seed180")
    assert (second.extracted, second.cached, second.rows) == (0, 1200, 1200)
    assert second.seconds < 30
    pd.testing.assert_frame_equal(read(out, "features.parquet"), features)


@pytest.fixture
def messy_corpus(shared_data, tmp_path):
    """TESS and EmoDB samples plus every kind of bad input a real folder collects."""
    root = tmp_path / "corpora"
    shutil.copytree(shared_data / "tess_sample", root / "tess")
    shutil.copytree(shared_data / "emodb_sample", root / "emodb")
    good = root / "emodb" / "wav" / "03a01Fa.wav"
    truncated = root / "emodb" / "wav" / "03a01Wa.wav"
    truncated.write_bytes(good.read_bytes()[:5000])
    sf.write(root / "emodb" / "wav" / "16b10Tb.wav", np.zeros(16000, np.float32), 16000)
    (root / "emodb" / "wav" / "08a01Fa.wav").write_bytes(b"")
    (root / "notes.txt").write_text("recording notes")
    (root / ".DS_Store").write_bytes(b"\x00\x01")
    shutil.copy(good, root / "interview_take3.wav")
    return root


def test_bad_files_are_quarantined_and_the_rest_complete(messy_corpus, tmp_path):
    out = tmp_path / "features"
    summary = extract_features([str(messy_corpus)], str(out))
    quarantine = read(out, "quarantine.parquet").set_index(
        read(out, "quarantine.parquet")["path"].map(lambda p: p.rsplit("/", 1)[-1])
    )
    assert set(quarantine.index) == {"03a01Wa.wav", "16b10Tb.wav", "08a01Fa.wav"}
    assert "truncated" in quarantine.loc["03a01Wa.wav", "reason"]
    assert "silent" in quarantine.loc["16b10Tb.wav", "reason"]
    assert "empty" in quarantine.loc["08a01Fa.wav", "reason"]
    features = read(out, "features.parquet")
    # The three broken files were added beside the 60 TESS and 49 EmoDB clips, which all complete.
    assert summary.rows == len(features) == 60 + 49
    assert set(features["corpus"]) == {"tess", "emodb"}
    skipped = read(out, "skipped.parquet")
    assert len(skipped) == summary.skipped >= 3
    assert any("no known corpus" in r for r in skipped["reason"])
    assert np.isfinite(features.drop(columns=list(MANIFEST_COLUMNS)).to_numpy()).all()


def test_cache_follows_content_and_spec(shared_data, tmp_path):
    data = tmp_path / "audio"
    shutil.copytree(shared_data / "ravdess" / "Actor_02", data / "Actor_02")
    out = tmp_path / "features"
    assert extract_features([str(data)], str(out), feature_set="seed180").extracted == 60
    files = sorted((data / "Actor_02").glob("*.flac"))
    files[0].unlink()
    samples, rate = sf.read(files[1])
    sf.write(files[1], samples * 0.5, rate, format="FLAC")
    rerun = extract_features([str(data)], str(out), feature_set="seed180")
    # dropped: the deleted file and the stale row of the changed one.
    assert (rerun.extracted, rerun.cached, rerun.dropped, rerun.rows) == (1, 58, 2, 59)
    other_spec = extract_features([str(data)], str(out), feature_set="egemaps")
    assert (other_spec.extracted, other_spec.cached) == (59, 0)
