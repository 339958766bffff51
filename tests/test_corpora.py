"""Tests for corpus file-name parsing and folder scanning (no audio is decoded)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from ser_features.corpora import (
    AUDIO_EXTENSIONS,
    NO_CORPUS_REASON,
    PARSERS,
    ClipLabels,
    parse_crema_d,
    parse_emodb,
    parse_path,
    parse_ravdess,
    parse_savee,
    parse_tess,
    relabel,
    scan_folders,
)
from ser_features.errors import AudioError
from ser_features.labels import EMOTIONS

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def real_files(subfolder: str, pattern: str) -> list[Path]:
    """Return the real corpus files under ``DATA/subfolder``, skipping when absent."""
    folder = DATA / subfolder
    if not folder.is_dir():
        pytest.skip(f"real data not available at {folder}")
    return sorted(folder.glob(pattern))


def touch(path: Path) -> Path:
    """Create an empty file (and its folders); names, not contents, are under test."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


# --- real file names ------------------------------------------------------------------------
def test_all_real_ravdess_files_parse() -> None:
    files = real_files("ravdess", "Actor_*/*.flac")
    assert len(files) == 1200
    labels = [parse_ravdess(path) for path in files]
    assert all(label is not None for label in labels)
    assert len({label.speaker for label in labels}) == 20
    assert {label.emotion for label in labels} == set(EMOTIONS[:8])
    assert {label.vocal_channel for label in labels} == {"speech"}
    assert {label.statement for label in labels} == {"01", "02"}
    for path, label in zip(files, labels, strict=True):
        actor = path.parent.name.removeprefix("Actor_")
        assert label.corpus == "ravdess"
        assert label.speaker == f"ravdess_{actor}"
        assert label.gender == ("male" if int(actor) % 2 else "female")
        if label.emotion == "neutral":
            assert label.intensity == "normal"
    assert Counter(label.intensity for label in labels) == {"normal": 640, "strong": 560}


def test_all_real_tess_files_parse() -> None:
    files = real_files("tess_sample", "*/*.wav")
    assert len(files) == 60
    folder_emotion = {"fear": "fearful", "pleasant_surprise": "surprised"}
    for path in files:
        label = parse_tess(path)
        assert label is not None, path
        speaker, emotion = path.parent.name.split("_", 1)
        assert label.speaker == f"tess_{speaker}"
        assert label.emotion == folder_emotion.get(emotion, emotion)
        assert label.gender == "female"
        assert label.statement == path.stem.split("_")[1]
    labels = [parse_tess(path) for path in files]
    assert {label.speaker for label in labels} == {"tess_OAF", "tess_YAF"}
    assert {label.emotion for label in labels} == {
        "angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised",
    }  # fmt: skip


def test_tess_speaker_typo_and_pleasant_surprise() -> None:
    typo = parse_tess(DATA / "tess_sample" / "OAF_neutral" / "OA_bite_neutral.wav")
    assert typo == ClipLabels("tess", "tess_OAF", "female", "neutral", None, "bite", "speech")
    assert parse_tess(Path("YAF_pleasant_surprise/YAF_bite_ps.wav")).emotion == "surprised"
    assert parse_tess(Path("OAF_back_pleasant_surprise.wav")).emotion == "surprised"
    # The odd prefix is only trusted inside a TESS folder.
    assert parse_tess(Path("elsewhere/OA_bite_neutral.wav")) is None


def test_all_real_emodb_files_parse() -> None:
    files = real_files("emodb_sample/wav", "*.wav")
    assert len(files) == 49
    labels = [parse_emodb(path) for path in files]
    assert all(label is not None for label in labels)
    assert len({label.speaker for label in labels}) == 10
    assert {label.emotion for label in labels} == {
        "angry", "boredom", "disgust", "fearful", "happy", "sad", "neutral",
    }  # fmt: skip
    males = {"emodb_03", "emodb_10", "emodb_11", "emodb_12", "emodb_15"}
    for path, label in zip(files, labels, strict=True):
        assert label.speaker == f"emodb_{path.stem[:2]}"
        assert label.statement == path.stem[2:5]
        assert label.gender == ("male" if label.speaker in males else "female")
    first = parse_emodb(Path("03a01Fa.wav"))
    assert first == ClipLabels("emodb", "emodb_03", "male", "happy", None, "a01", "speech")


def test_each_real_file_matches_exactly_one_parser() -> None:
    if not DATA.is_dir():
        pytest.skip(f"real data not available at {DATA}")
    files = [p for p in sorted(DATA.rglob("*")) if p.suffix in (".wav", ".flac")]
    per_folder = Counter(path.relative_to(DATA).parts[0] for path in files)
    assert per_folder == {"ravdess": 1200, "cremad": 3671, "tess_sample": 60, "emodb_sample": 49}
    for path in files:
        matches = [parser.__name__ for parser in PARSERS if parser(path) is not None]
        assert len(matches) == 1, (path, matches)


# --- synthetic names ------------------------------------------------------------------------
def test_ravdess_song_and_modalities() -> None:
    song = parse_ravdess(Path("01-02-06-02-01-02-07.wav"))
    assert song == ClipLabels("ravdess", "ravdess_07", "male", "fearful", "strong", "01", "song")
    assert parse_ravdess(Path("02-01-01-01-02-01-24.mp3")).gender == "female"
    assert parse_ravdess(Path("03-01-08-02-02-02-21.flac")).emotion == "surprised"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("1001_DFA_ANG_XX.wav", ("crema_d_1001", "angry", None, "DFA")),
        ("1091_IEO_HAP_HI.wav", ("crema_d_1091", "happy", "high", "IEO")),
        ("1042_WSI_FEA_LO.wav", ("crema_d_1042", "fearful", "low", "WSI")),
        ("1050_ITS_DIS_MD.flac", ("crema_d_1050", "disgust", "medium", "ITS")),
        ("1002_TSI_NEU_XX.wav", ("crema_d_1002", "neutral", None, "TSI")),
        ("1003_MTI_SAD_HI.wav", ("crema_d_1003", "sad", "high", "MTI")),
    ],
)
def test_crema_d(name: str, expected: tuple[str, str, str | None, str]) -> None:
    label = parse_crema_d(Path(name))
    assert (label.speaker, label.emotion, label.intensity, label.statement) == expected
    assert (label.corpus, label.gender, label.vocal_channel) == ("crema_d", None, "speech")
    assert parse_path(Path(name)) == label


@pytest.mark.parametrize(
    ("path", "speaker", "emotion", "statement"),
    [
        ("DC_a01.wav", "savee_DC", "angry", "a01"),
        ("JE_sa03.wav", "savee_JE", "sad", "sa03"),
        ("KL_su15.wav", "savee_KL", "surprised", "su15"),
        ("AudioData/JK/n30.wav", "savee_JK", "neutral", "n30"),
        ("AudioData/DC/d02.wav", "savee_DC", "disgust", "d02"),
        ("KL/f07.wav", "savee_KL", "fearful", "f07"),
        ("JE/h11.wav", "savee_JE", "happy", "h11"),
    ],
)
def test_savee(path: str, speaker: str, emotion: str, statement: str) -> None:
    label = parse_savee(Path(path))
    assert label == ClipLabels("savee", speaker, "male", emotion, None, statement, "speech")
    assert parse_path(path) == label


@pytest.mark.parametrize(
    "path",
    [
        "notes.wav",
        "03-01-09-01-01-01-01.wav",  # emotion 09
        "03-01-01-02-01-01-01.wav",  # strong neutral does not exist
        "03-02-07-01-01-01-01.wav",  # no sung disgust
        "03-01-05-01-01-01-25.wav",  # actor out of range
        "03-01-05-01-01-01-00.wav",
        "04-01-05-01-01-01-01.wav",  # modality 04
        "03-01-05-01-03-01-01.wav",  # statement 03
        "03-01-05-01-01-01.wav",  # missing field
        "1001_XXX_ANG_XX.wav",
        "1000_DFA_ANG_XX.wav",
        "1092_DFA_ANG_XX.wav",
        "1001_DFA_BOR_XX.wav",
        "1001_DFA_ANG_ZZ.wav",
        "01a01Fa.wav",  # speaker 01 is not in EmoDB
        "03a01Xa.wav",
        "03c01Fa.wav",  # text c01 is not in EmoDB
        "XY_a01.wav",
        "DC_x01.wav",
        "DC_a00.wav",
        "DC/x01.wav",
        "other/a01.wav",
        "OAF_back_bored.wav",
        "misc/OA_bite_neutral.wav",
        "some_random_thing.wav",
    ],
)
def test_names_that_must_not_parse(path: str) -> None:
    assert parse_path(Path(path)) is None
    assert all(parser(Path(path)) is None for parser in PARSERS)


def test_clip_labels_are_validated_and_relabelled() -> None:
    assert ClipLabels("calls", "calls_agent7", None, "frustrated").emotion == "frustrated"
    with pytest.raises(AudioError, match="non-empty name"):
        ClipLabels("tess", "tess_OAF", "female", "  ")
    with pytest.raises(AudioError, match="grouped_by"):
        ClipLabels("calls", "calls_x", None, "sad", grouped_by="room")
    with pytest.raises(AudioError, match="not qualified"):
        ClipLabels("tess", "OAF", "female", "sad")
    moved = relabel(parse_ravdess(Path("03-01-05-01-02-01-03.wav")), "synthetic_demo")
    assert (moved.corpus, moved.speaker, moved.emotion) == (
        "synthetic_demo",
        "synthetic_demo_03",
        "angry",
    )
    assert {"wav", "flac", "ogg", "aiff", "mp3"} <= AUDIO_EXTENSIONS
    assert "mp4" not in AUDIO_EXTENSIONS and "txt" not in AUDIO_EXTENSIONS


# --- scanning -------------------------------------------------------------------------------
@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "audio"
    touch(root / "ravdess" / "Actor_01" / "03-01-05-01-02-01-01.wav")
    touch(root / "ravdess" / "Actor_01" / "03-01-03-02-01-01-01.FLAC")
    touch(root / "tess" / "OAF_neutral" / "OA_bite_neutral.wav")
    touch(root / "savee" / "DC" / "sa01.wav")
    touch(root / "emodb" / "03a01Fa.wav")
    touch(root / "notes.txt")
    touch(root / "LICENSE")
    touch(root / "ravdess" / ".DS_Store")
    touch(root / ".cache" / "03-01-05-01-02-01-02.wav")
    touch(root / "unknown.wav")
    touch(root / "video.mp4")
    return root


def test_scan_folders_finds_clips_and_explains_skips(tree: Path) -> None:
    result = scan_folders([tree])
    assert [clip.path.relative_to(tree).as_posix() for clip in result.clips] == [
        "emodb/03a01Fa.wav",
        "ravdess/Actor_01/03-01-03-02-01-01-01.FLAC",
        "ravdess/Actor_01/03-01-05-01-02-01-01.wav",
        "savee/DC/sa01.wav",
        "tess/OAF_neutral/OA_bite_neutral.wav",
    ]
    assert [clip.labels.speaker for clip in result.clips] == [
        "emodb_03", "ravdess_01", "ravdess_01", "savee_DC", "tess_OAF",
    ]  # fmt: skip
    assert result.clips[1].labels.intensity == "strong"
    skipped = {path.relative_to(tree).as_posix(): reason for path, reason in result.skipped}
    assert skipped == {
        ".cache": "hidden directory (not scanned)",
        "LICENSE": "not an audio file (no extension)",
        "notes.txt": "not an audio file (extension .txt)",
        "unknown.wav": NO_CORPUS_REASON,
        "video.mp4": "not an audio file (extension .mp4)",
        "ravdess/.DS_Store": "hidden file",
    }
    assert len(result.skipped) == len(skipped)


def test_scan_folders_is_deterministic_and_deduplicates(tree: Path) -> None:
    once = scan_folders([tree])
    repeated = scan_folders([str(tree), tree / "ravdess", tree, tree / "tess" / ".."])
    assert repeated.clips == once.clips
    assert repeated.skipped == once.skipped
    assert scan_folders(tree).clips == once.clips  # a single folder is accepted too
    nested_first = scan_folders([tree / "ravdess", tree])
    assert sorted(c.path for c in nested_first.clips) == sorted(c.path for c in once.clips)
    assert len(nested_first.clips) == len(once.clips)


def test_scan_folders_reports_linked_duplicates(tree: Path) -> None:
    original = tree / "emodb" / "03a01Fa.wav"
    link = tree / "links" / "03a01Fa.wav"
    link.parent.mkdir()
    link.symlink_to(original)
    result = scan_folders([tree])
    assert [c.path for c in result.clips].count(original) == 1
    assert link not in [c.path for c in result.clips]
    assert (link, f"same file as {original} (reached through a link)") in result.skipped


def test_scan_folders_records_unreadable_directory(tree: Path) -> None:
    locked = tree / "locked"
    touch(locked / "03-01-05-01-02-01-04.wav")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running with privileges that can read a chmod 000 directory")
        result = scan_folders([tree])
    finally:
        locked.chmod(0o755)
    reasons = dict(result.skipped)
    assert reasons[locked].startswith("directory cannot be read: PermissionError")
    assert len(result.clips) == 5  # the walk went on past the locked folder


def test_corpus_json_relabels_synthetic_clips(tree: Path, tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    touch(demo / "Actor_03" / "03-01-05-01-02-01-03.wav")
    touch(demo / "Actor_04" / "03-01-04-02-01-02-04.wav")
    (demo / "CORPUS.json").write_text(json.dumps({"corpus": "synthetic_demo", "synthetic": True}))
    result = scan_folders([demo, tree])
    demo_clips = [clip for clip in result.clips if clip.path.is_relative_to(demo)]
    assert [clip.labels.speaker for clip in demo_clips] == [
        "synthetic_demo_03",
        "synthetic_demo_04",
    ]
    assert {clip.labels.corpus for clip in demo_clips} == {"synthetic_demo"}
    assert demo_clips[1].labels == ClipLabels(
        "synthetic_demo", "synthetic_demo_04", "female", "sad", "strong", "01", "speech"
    )
    assert all(path.name != "CORPUS.json" for path, _ in result.skipped)
    # Real clips scanned in the same call keep their corpus.
    assert {c.labels.corpus for c in result.clips if c.path.is_relative_to(tree)} == {
        "emodb", "ravdess", "savee", "tess",
    }  # fmt: skip
    # The marker also covers a sub-folder scanned on its own.
    sub = scan_folders([demo / "Actor_03"])
    assert sub.clips[0].labels.corpus == "synthetic_demo"


def test_bad_corpus_json_is_an_error(tmp_path: Path) -> None:
    touch(tmp_path / "03-01-05-01-02-01-03.wav")
    marker = tmp_path / "CORPUS.json"
    marker.write_text("{not json")
    with pytest.raises(AudioError, match="cannot be read as JSON"):
        scan_folders([tmp_path])
    marker.write_text(json.dumps({"synthetic": True}))
    with pytest.raises(AudioError, match="must hold"):
        scan_folders([tmp_path])
    marker.write_text(json.dumps({"corpus": "ravdess", "synthetic": True}))
    with pytest.raises(AudioError, match="real corpus name"):
        scan_folders([tmp_path])


def test_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="audio folder does not exist"):
        scan_folders([tmp_path / "nope"])
    with pytest.raises(NotADirectoryError):
        scan_folders([touch(tmp_path / "03-01-05-01-02-01-03.wav")])


def test_scan_folders_survives_a_listing_error(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same as the chmod test, but works as root: the listing of one folder fails."""
    locked = tree / "tess"
    real_scandir = os.scandir

    def scandir(path: str | os.PathLike[str] = ".") -> object:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = scan_folders([tree])
    assert dict(result.skipped)[locked] == (
        "directory cannot be read: PermissionError: Permission denied"
    )
    assert [clip.labels.corpus for clip in result.clips] == ["emodb", "ravdess", "ravdess", "savee"]
