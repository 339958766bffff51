"""Own data: manifests, AudioFolder and label-folder layouts, segments, bad rows, ser data check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from click.testing import Result
from typer.testing import CliRunner

from ser_features.audio import load_audio
from ser_features.clip_source import clip_key, parse_clip_key, read_clip_bytes, span_digest
from ser_features.data_check import check_sources
from ser_features.errors import AudioError
from ser_features.extraction import ClipJob, content_digest, extract_clip
from ser_features.manifests import ManifestError, read_manifest
from ser_features.sources import find_clips

RATE = 16000


def tone(path: Path, seconds: float = 1.0, *, frequency: float = 220.0) -> Path:
    """A short voiced-like tone (not silent, so it validates)."""
    time = np.arange(int(seconds * RATE)) / RATE
    samples = 0.3 * np.sin(2 * np.pi * frequency * time) * (1 + 0.3 * np.sin(2 * np.pi * 3 * time))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples.astype(np.float32), RATE, subtype="PCM_16")
    return path


@pytest.fixture
def calls(tmp_path) -> Path:
    """``calls/`` with two 3 s recordings and nothing else."""
    folder = tmp_path / "calls"
    tone(folder / "call_0001.wav", 3.0)
    tone(folder / "call_0002.wav", 3.0, frequency=180.0)
    return folder


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


# --- the contract -----------------------------------------------------------------------------


def test_a_csv_manifest_gives_its_own_labels_speakers_segments_and_corpus(calls):
    manifest = write_csv(
        calls / "metadata_export.csv",
        "path,label,speaker,gender,session,start,end\n"
        "call_0001.wav,frustrated,agent 7,F,c1,0.0,1.5\n"
        "call_0001.wav,calm,customer,m,c1,1.5,3.0\n"
        f"{calls / 'call_0002.wav'},frustrated,,,c2,,\n"
        "call_0002.wav,joy,,,,0.5,2\n",
    )
    rows = read_manifest(manifest)
    assert rows.refused == []
    first, second, third, fourth = rows.clips
    assert (first.labels.emotion, first.start, first.end) == ("frustrated", 0.0, 1.5)
    assert first.path == calls / "call_0001.wav" and first.path.is_absolute()
    assert first.labels.corpus == "metadata_export"
    assert (first.labels.speaker, first.labels.gender) == ("metadata_export_agent 7", "female")
    assert (second.labels.gender, second.labels.session) == ("male", "c1")
    assert (third.labels.speaker, third.labels.grouped_by) == (
        "metadata_export_session-c2",
        "session",
    )
    assert third.start is None and third.duration_s == pytest.approx(3.0)
    assert fourth.labels.grouped_by == "recording"
    assert fourth.labels.speaker == "metadata_export_recording-call_0002.wav"
    assert fourth.duration_s == pytest.approx(1.5)


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl", ".parquet"])
def test_tsv_jsonl_and_parquet_manifests_read_the_same_rows(calls, suffix):
    frame = pd.DataFrame(
        {
            "file_name": ["call_0001.wav", "call_0002.wav"],  # AudioFolder's name for path
            "emotion": ["anger", "joy"],  # read as label
            "speaker_id": ["a", "b"],
            "corpus": ["Call Centre", "Call Centre"],
            "meta_agent_team": ["x", "y"],  # kept out of the way
        }
    )
    manifest = calls / f"rows{suffix}"
    if suffix == ".tsv":
        frame.to_csv(manifest, sep="\t", index=False)
    elif suffix == ".jsonl":
        frame.to_json(manifest, orient="records", lines=True)
    else:
        frame.to_parquet(manifest)
    clips = read_manifest(manifest).clips
    assert [c.labels.emotion for c in clips] == ["anger", "joy"]
    assert [c.labels.speaker for c in clips] == ["call_centre_a", "call_centre_b"]


def test_nemo_offset_and_duration_give_a_segment(calls):
    manifest = calls / "nemo.jsonl"
    manifest.write_text(
        json.dumps(
            {"audio_filepath": "call_0001.wav", "offset": 0.5, "duration": 1.25, "label": "sad"}
        )
        + "\n"
    )
    (clip,) = read_manifest(manifest).clips
    assert (clip.start, clip.end) == (0.5, 1.75)


# --- bad manifests: rows quarantined with their line, files refused before any audio ---------


def test_bad_rows_are_refused_with_their_line_and_the_good_rows_stay(calls):
    tone(calls / "short.wav", 1.0)
    (calls / "notes.wav").write_bytes(b"this is not audio")
    manifest = write_csv(
        calls / "m.csv",
        "path,label,speaker,start,end\n"
        "call_0001.wav,anger,a,,\n"  # line 2: good
        "missing.wav,anger,a,,\n"  # 3
        "call_0002.wav,,a,,\n"  # 4
        "call_0002.wav,anger,a,2,1\n"  # 5
        "short.wav,anger,a,0.5,9\n"  # 6
        "call_0001.wav,joy,a,,\n"  # 7: same clip as line 2
        "notes.wav,anger,a,,\n"  # 8
        "call_0002.wav,anger,a,one,2\n"  # 9
        "call_0002.wav,anger,a,1,\n"  # 10
        "call_0002.wav,sad,b,0,1.5\n",  # 11: good
    )
    rows = read_manifest(manifest)
    assert [c.labels.emotion for c in rows.clips] == ["anger", "sad"]
    reasons = {where.rsplit(": ", 1)[-1]: reason for where, reason in rows.refused}
    assert "audio file not found: missing.wav" in reasons["line 3"]
    assert reasons["line 4"] == "empty label"
    assert reasons["line 5"] == "end (1 s) must be after start (2 s)"
    assert "segment 0.5-9 s lies outside short.wav (1.00 s long)" in reasons["line 6"]
    assert reasons["line 7"] == "duplicate of line 2 (the same clip)"
    assert "notes.wav: not readable audio" in reasons["line 8"]
    assert reasons["line 9"] == "start 'one' is not a number of seconds"
    assert reasons["line 10"] == "a segment needs both start and end"
    assert all(where.startswith(str(manifest)) for where, _ in rows.refused)


@pytest.mark.parametrize(
    ("text", "encoding", "message"),
    [
        ("path,label,speeker\nx.wav,sad,a\n", "utf-8", "unknown column 'speeker'"),
        ("path;label\nx.wav;sad\n", "utf-8", "uses ';' as its separator"),
        ("path,label\nfrançais.wav,colère\n", "latin-1", "not UTF-8 text (byte 0xe7 on line 2)"),
        ("label\nsad\n", "utf-8", "no 'path' column"),
        ("path,speaker\nx.wav,a\n", "utf-8", "no 'label' column"),
        ("path,label,start\nx.wav,sad,1\n", "utf-8", "'start' column needs an 'end'"),
        ("path,label,emotion\nx.wav,sad,sad\n", "utf-8", "'label' and 'emotion' both give"),
        ('path,label\n"x.wav,sad\n', "utf-8", "cannot be parsed as CSV"),
    ],
)
def test_a_manifest_that_cannot_be_read_is_refused_whole(calls, text, encoding, message):
    manifest = write_csv(calls / "bad.csv", text, encoding)
    with pytest.raises(ManifestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        find_clips(manifest)
    report = check_sources([manifest])
    assert report.stops_a_run and message.split(" (")[0] in report.errors[0]


def test_a_bad_json_line_is_one_refused_row(calls):
    manifest = calls / "m.jsonl"
    manifest.write_text(
        '{"path": "call_0001.wav", "label": "sad", "speaker": "a"}\n'
        "{not json\n"
        '{"path": "call_0002.wav", "label": "joy", "speaker": "b"}\n'
    )
    rows = read_manifest(manifest)
    assert len(rows.clips) == 2
    assert rows.refused == [(f"{manifest}: line 2", "not a JSON object")]


# --- the layouts users already have ------------------------------------------------------------


def test_an_audiofolder_reads_its_metadata_and_skips_unlisted_audio(calls):
    tone(calls / "extra.wav")
    write_csv(
        calls / "metadata.csv",
        "file_name,emotion,speaker\ncall_0001.wav,anger,s1\ncall_0002.wav,frustrated,s2\n",
    )
    scan = find_clips(calls)
    assert [(c.path.name, c.labels.emotion, c.labels.corpus) for c in scan.clips] == [
        ("call_0001.wav", "anger", "calls"),
        ("call_0002.wav", "frustrated", "calls"),
    ]
    assert [(p.name, r) for p, r in scan.skipped] == [("extra.wav", "not listed in metadata.csv")]


def test_label_folders_give_labels_and_group_by_recording(tmp_path):
    root = tmp_path / "My Corpus"
    tone(root / "angry" / "a1.wav")
    tone(root / "angry" / "day2" / "a2.flac")
    tone(root / "neutral" / "n1.wav")
    tone(root / "loose.wav")
    scan = find_clips(root)
    assert sorted((c.labels.emotion, c.labels.grouped_by) for c in scan.clips) == [
        ("angry", "recording"),
        ("angry", "recording"),
        ("neutral", "recording"),
    ]
    assert {c.labels.corpus for c in scan.clips} == {"my_corpus"}
    assert len({c.labels.speaker for c in scan.clips}) == 3
    assert [p.name for p, _ in scan.skipped] == ["loose.wav"]


def test_built_in_corpora_still_parse_and_a_clip_listed_twice_counts_once(shared_data, tmp_path):
    actor = shared_data / "ravdess" / "Actor_01"
    first = sorted(actor.glob("*.flac"))[0]
    manifest = write_csv(tmp_path / "again.csv", f"path,label,speaker\n{first},anger,x\n")
    scan = find_clips([actor, manifest])
    assert len(scan.clips) == 60
    assert all(c.labels.corpus == "ravdess" for c in scan.clips)
    assert any("listed twice" in reason for _, reason in scan.skipped)


# --- segments: read by seeking, keyed by digest plus span ----------------------------------------


def test_a_segment_is_the_same_samples_as_slicing_the_whole_file(shared_data):
    path = sorted((shared_data / "ravdess" / "Actor_02").glob("*.flac"))[5]
    whole = load_audio(path)
    part = load_audio(path, span=(0.5, 2.25))
    assert np.allclose(part.samples, whole.samples[8000:36000], atol=1e-6)
    again = load_audio(read_clip_bytes(clip_key(str(path), 0.5, 2.25)))
    assert np.allclose(again.samples, part.samples, atol=1e-6)
    with pytest.raises(AudioError, match="lies outside the recording"):
        load_audio(path, span=(1.0, 60.0))


def test_clip_keys_and_digests_name_the_span(tmp_path):
    assert parse_clip_key(clip_key("/a/b.wav", 1.0, 2.5)) == ("/a/b.wav", 1.0, 2.5)
    assert span_digest("ab", None, None) == "ab"
    assert span_digest("ab", 1, 2) != span_digest("ab", 1, 3) != "ab"
    odd = tone(tmp_path / "odd#t=1,2.wav")  # a real file whose name looks like a span
    assert parse_clip_key(str(odd)) == (str(odd), None, None)


def test_segments_of_one_file_are_described_apart(calls):
    path = str(calls / "call_0001.wav")
    digest = content_digest(path)
    labels = (
        read_manifest(write_csv(calls / "m.csv", "path,label\ncall_0001.wav,sad\n")).clips[0].labels
    )
    first = extract_clip(ClipJob(path, digest, labels, start=0.0, end=1.0), "spectral_prosodic")
    second = extract_clip(ClipJob(path, digest, labels, start=1.0, end=2.5), "spectral_prosodic")
    assert first.ok and second.ok
    assert first.path == f"{path}#t=0,1" and first.manifest["end"] == 1.0
    assert first.digest != second.digest != digest
    assert 1.4 < second.manifest["duration_s"] <= 1.5  # the span, trimmed by the feature set


# --- ser data check ------------------------------------------------------------------------------


def test_data_check_prints_what_a_run_would_see(shared_data, tmp_path):
    from flows.cli import app

    rows = ["path,label,speaker"]
    for actor in ("01", "02", "03"):
        for path in sorted((shared_data / "ravdess" / f"Actor_{actor}").glob("*-05-*.flac"))[:3]:
            rows.append(f"{path},anger,{actor}")
        for path in sorted((shared_data / "ravdess" / f"Actor_{actor}").glob("*-03-*.flac"))[:2]:
            rows.append(f"{path},joy,{actor}")
    rows.append(f"{tmp_path / 'gone.wav'},joy,01")
    manifest = write_csv(tmp_path / "mine.csv", "\n".join(rows) + "\n")
    result = CliRunner().invoke(app, ["data", "check", str(manifest)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "15 clips (0 segments of longer recordings) from 15 files" in result.output
    assert "anger" in result.output and "joy" in result.output
    assert "1 refused rows" in result.output and "line 17" in result.output
    assert "ok: a run can start" in result.output

    rows.append(f"{sorted((shared_data / 'ravdess' / 'Actor_04').glob('*.flac'))[0]},awe,04")
    write_csv(manifest, "\n".join(rows) + "\n")
    result = CliRunner().invoke(app, ["data", "check", str(manifest)], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "label 'awe' has 1 clip(s) from 1 speaker group(s)" in result.output

    # the experiment file's label mapping is what a run trains on: awe merged into joy
    def check_with(labels: str) -> Result:
        config = tmp_path / "mine.yaml"
        config.write_text(
            f"name: mine\ndata:\n  folders: [{manifest}]\n  labels:\n{labels}"
            "trainers:\n  sklearn_linear: {}\n"
        )
        return CliRunner().invoke(
            app, ["data", "check", "--config", str(config)], env={"COLUMNS": "200"}
        )

    result = check_with("    map: {awe: joy}\n")
    assert result.exit_code == 0, result.output
    assert "16 clips (0 segments of longer recordings)" in result.output
    assert "'awe'" not in result.output and "│ joy   │     7" in result.output
    result = check_with("    map: {awe: joy}\n    drop: [anger]\n")
    assert result.exit_code == 1, result.output
    assert "data.labels leaves out 9 clips: anger (9)" in result.output
    assert "only one label ('joy') remains" in result.output


def test_a_missing_source_stops_the_check(tmp_path):
    report = check_sources([tmp_path / "nowhere.csv"])
    assert report.stops_a_run and "no such folder or manifest" in report.errors[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_sources([empty]).errors == [
        "no labelled clips found: a run would have nothing to train on"
    ]


def test_a_manifest_beside_its_audio_can_move_with_it(calls, tmp_path):
    write_csv(calls / "m.csv", "path,label,speaker\ncall_0001.wav,sad,a\ncall_0002.wav,joy,b\n")
    moved = shutil.copytree(calls, tmp_path / "elsewhere")
    assert [c.path.parent for c in read_manifest(moved / "m.csv").clips] == [moved, moved]
