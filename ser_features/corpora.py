"""Labels from corpus file names, and a folder scanner that finds labelled audio clips.

Each supported corpus (RAVDESS, TESS, EmoDB, CREMA-D, SAVEE) encodes speaker and emotion in
its file names; ``parse_<corpus>`` reads one scheme and ``parse_path`` tries them all.  The
schemes are disjoint, so at most one parser accepts a given name.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ser_features.errors import AudioError

#: Corpora whose file-name schemes are understood.
CORPORA: tuple[str, ...] = ("ravdess", "tess", "emodb", "crema_d", "savee")

#: Lower-case extensions (without dot) of files libsndfile can decode.
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {"wav", "flac", "ogg", "oga", "opus", "aiff", "aif", "aifc", "au", "snd"}
    | {"w64", "rf64", "caf", "mp3"}
)

#: Marker file that renames the corpus of every clip in its folder and below.
MARKER_FILE = "CORPUS.json"

NO_CORPUS_REASON = (
    "file name matches no known corpus naming scheme (RAVDESS, TESS, EmoDB, CREMA-D, SAVEE)"
)


#: How a clip's ``speaker`` was found, which is what speaker-independent splits group by:
#: a named speaker, else the session (call, interview) it belongs to, else its recording.
GROUPINGS: tuple[str, ...] = ("speaker", "session", "recording")


@dataclass(frozen=True)
class ClipLabels:
    """Everything known about one clip besides its audio.

    ``emotion`` is the clip's label, any non-empty name (the built-in corpora map theirs
    onto :data:`~ser_features.labels.EMOTIONS`). ``speaker`` is corpus-qualified
    (``"ravdess_12"``) so speakers never collide across corpora; ``grouped_by`` says
    whether it names a speaker, a session or only a recording (see :data:`GROUPINGS`).
    ``gender``, ``intensity``, ``statement`` and ``session`` are None when unknown.
    """

    corpus: str
    speaker: str
    gender: str | None
    emotion: str
    intensity: str | None = None
    statement: str | None = None
    vocal_channel: str = "speech"
    session: str | None = None
    grouped_by: str = "speaker"

    def __post_init__(self) -> None:
        if not isinstance(self.emotion, str) or not self.emotion.strip():
            raise AudioError(f"a clip's label must be a non-empty name, got {self.emotion!r}")
        if self.gender is not None and not (isinstance(self.gender, str) and self.gender):
            raise AudioError(f"gender must be a non-empty name or None, got {self.gender!r}")
        if self.vocal_channel not in ("speech", "song"):
            raise AudioError(f"vocal_channel must be 'speech' or 'song': {self.vocal_channel!r}")
        if not self.speaker.startswith(f"{self.corpus}_"):
            raise AudioError(f"speaker {self.speaker!r} is not qualified by {self.corpus!r}")
        if self.grouped_by not in GROUPINGS:
            raise AudioError(f"grouped_by must be one of {GROUPINGS}, got {self.grouped_by!r}")


# --- RAVDESS: modality-channel-emotion-intensity-statement-repetition-actor -----------------
_RAVDESS = re.compile(r"^(0[123])-(0[12])-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d{2})$")
_RAVDESS_EMOTIONS = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised",
}  # fmt: skip


def parse_ravdess(path: Path) -> ClipLabels | None:
    """Parse ``03-01-05-01-02-01-12.flac``; None for other names or impossible codes.

    Rejected as impossible: actors outside 01-24, strong neutral, sung disgust or surprise.
    """
    match = _RAVDESS.match(Path(path).stem)
    if match is None:
        return None
    _, channel, emotion_code, intensity, statement, _, actor = match.groups()
    emotion = _RAVDESS_EMOTIONS[emotion_code]
    if not 1 <= int(actor) <= 24:
        return None
    if (emotion == "neutral" and intensity == "02") or (
        channel == "02" and emotion in ("disgust", "surprised")
    ):
        return None
    gender = "male" if int(actor) % 2 else "female"
    strength = "normal" if intensity == "01" else "strong"
    channel = "speech" if channel == "01" else "song"
    return ClipLabels("ravdess", f"ravdess_{actor}", gender, emotion, strength, statement, channel)


# --- TESS: <SPEAKER>_<word>_<emotion>, in folders <SPEAKER>_<emotion> ------------------------
_TESS_FILE = re.compile(r"^([A-Za-z]{1,4})_([A-Za-z]+)_([A-Za-z_]+)$")
_TESS_FOLDER = re.compile(r"^(OAF|YAF)_([A-Za-z_]+)$", re.IGNORECASE)
_TESS_SPEAKERS = ("OAF", "YAF")
_TESS_EMOTIONS = {
    "angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy",
    "neutral": "neutral", "sad": "sad", "ps": "surprised",
    "pleasant_surprise": "surprised", "pleasant_surprised": "surprised",
}  # fmt: skip


def parse_tess(path: Path) -> ClipLabels | None:
    """Parse ``OAF_back_angry.wav``; both speakers are female, ``ps`` is ``surprised``.

    When the speaker prefix is not OAF/YAF (``OA_bite_neutral.wav``), the speaker is taken
    from a TESS folder name such as ``OAF_neutral``; without one the name is rejected.
    """
    path = Path(path)
    match = _TESS_FILE.match(path.stem)
    if match is None:
        return None
    prefix, word, emotion_code = match.groups()
    emotion = _TESS_EMOTIONS.get(emotion_code.lower())
    if emotion is None:
        return None
    speaker = prefix.upper()
    if speaker not in _TESS_SPEAKERS:
        folder = _TESS_FOLDER.match(path.parent.name)
        if folder is None or folder.group(2).lower() not in _TESS_EMOTIONS:
            return None
        speaker = folder.group(1).upper()
    return ClipLabels("tess", f"tess_{speaker}", "female", emotion, None, word.lower())


# --- EmoDB: <speaker:2><text:3><emotion letter><version letter> ------------------------------
_EMODB = re.compile(r"^(\d{2})([a-z]\d{2})([WLEAFTN])[a-z]?$")
_EMODB_TEXTS = frozenset({"a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10"})
_EMODB_GENDERS = {
    "03": "male", "10": "male", "11": "male", "12": "male", "15": "male",
    "08": "female", "09": "female", "13": "female", "14": "female", "16": "female",
}  # fmt: skip
_EMODB_EMOTIONS = {
    "W": "angry", "L": "boredom", "E": "disgust", "A": "fearful",
    "F": "happy", "T": "sad", "N": "neutral",
}  # fmt: skip


def parse_emodb(path: Path) -> ClipLabels | None:
    """Parse ``03a01Fa.wav`` (speaker 03, text a01, happy); unknown speakers or texts: None."""
    match = _EMODB.match(Path(path).stem)
    if match is None:
        return None
    speaker, text, letter = match.groups()
    if speaker not in _EMODB_GENDERS or text not in _EMODB_TEXTS:
        return None
    gender = _EMODB_GENDERS[speaker]
    return ClipLabels("emodb", f"emodb_{speaker}", gender, _EMODB_EMOTIONS[letter], None, text)


# --- CREMA-D: <actor>_<sentence>_<emotion>_<level> -------------------------------------------
_CREMA_D_SENTENCES = "IEO|TIE|IOM|IWW|TAI|MTI|IWL|ITH|DFA|ITS|TSI|WSI"
_CREMA_D = re.compile(
    rf"^(\d{{4}})_({_CREMA_D_SENTENCES})_(ANG|DIS|FEA|HAP|NEU|SAD)_(LO|MD|HI|XX)$"
)
_CREMA_D_EMOTIONS = {
    "ANG": "angry", "DIS": "disgust", "FEA": "fearful",
    "HAP": "happy", "NEU": "neutral", "SAD": "sad",
}  # fmt: skip
_CREMA_D_LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": None}


#: CREMA-D's table of actors (ActorID, Age, Sex, Race, Ethnicity), beside the clips or above.
CREMA_D_DEMOGRAPHICS = "VideoDemographics.csv"


def parse_crema_d(path: Path) -> ClipLabels | None:
    """Parse ``1001_DFA_ANG_XX.wav``; the gender comes from ``VideoDemographics.csv`` in the
    clip's folder or one of the two above it (None when that table is absent)."""
    match = _CREMA_D.match(Path(path).stem)
    if match is None:
        return None
    actor, sentence, emotion, level = match.groups()
    if not 1001 <= int(actor) <= 1091:
        return None
    emotion, intensity = _CREMA_D_EMOTIONS[emotion], _CREMA_D_LEVELS[level]
    gender = _crema_d_genders(Path(path).resolve().parent).get(actor)
    return ClipLabels("crema_d", f"crema_d_{actor}", gender, emotion, intensity, sentence)


@functools.lru_cache(maxsize=64)
def _crema_d_genders(folder: Path) -> dict[str, str]:
    """``{actor id: "male" | "female"}`` from the nearest demographics table, else empty."""
    for candidate in (folder, folder.parent, folder.parent.parent):
        table = candidate / CREMA_D_DEMOGRAPHICS
        if table.is_file():
            with table.open(newline="") as handle:
                rows = csv.DictReader(handle)
                return {
                    str(row["ActorID"]).strip(): str(row["Sex"]).strip().lower()
                    for row in rows
                    if str(row.get("Sex", "")).strip().lower() in ("male", "female")
                }
    return {}


# --- SAVEE: DC_a01.wav flat, or DC/a01.wav in speaker folders --------------------------------
_SAVEE_CODE = r"(a|d|f|h|n|sa|su)(\d{2})"
_SAVEE_FLAT = re.compile(rf"^(DC|JE|JK|KL)_{_SAVEE_CODE}$")
_SAVEE_NESTED = re.compile(rf"^{_SAVEE_CODE}$")
_SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
_SAVEE_EMOTIONS = {
    "a": "angry", "d": "disgust", "f": "fearful", "h": "happy",
    "n": "neutral", "sa": "sad", "su": "surprised",
}  # fmt: skip


def parse_savee(path: Path) -> ClipLabels | None:
    """Parse ``DC_a01.wav`` or ``DC/a01.wav``; all four speakers are male."""
    path = Path(path)
    match = _SAVEE_FLAT.match(path.stem)
    if match is not None:
        speaker, code, number = match.groups()
    elif path.parent.name in _SAVEE_SPEAKERS and (nested := _SAVEE_NESTED.match(path.stem)):
        speaker, (code, number) = path.parent.name, nested.groups()
    else:
        return None
    if number == "00":
        return None
    emotion = _SAVEE_EMOTIONS[code]
    return ClipLabels("savee", f"savee_{speaker}", "male", emotion, None, f"{code}{number}")


#: Parsers in the order ``parse_path`` tries them.
PARSERS: tuple[Callable[[Path], ClipLabels | None], ...] = (
    parse_ravdess, parse_crema_d, parse_emodb, parse_savee, parse_tess,
)  # fmt: skip


def parse_path(path: Path | str) -> ClipLabels | None:
    """Return the labels of the first corpus scheme ``path`` matches, or None."""
    path = Path(path)
    for parser in PARSERS:
        labels = parser(path)
        if labels is not None:
            return labels
    return None


# --- Scanning -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ScannedClip:
    """An audio file (or the span ``start``-``end`` s of it) and its labels.

    ``duration_s`` is the clip's length when it is known without decoding (a manifest row
    whose file header was read), else None.
    """

    path: Path
    labels: ClipLabels
    start: float | None = None
    end: float | None = None
    duration_s: float | None = None


@dataclass
class ScanResult:
    """Clips found in folders or manifests, every file passed over with the reason, and the
    manifest rows refused with theirs (``refused``: where, reason; they are quarantined)."""

    clips: list[ScannedClip] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def read_corpus_marker(directory: Path) -> str | None:
    """Return the corpus declared by ``directory/CORPUS.json``, or None if there is none.

    Raises ``AudioError`` when the marker is unreadable, lacks a lower-case ``"corpus"`` name,
    or is marked ``"synthetic": true`` while naming one of the real ``CORPORA``.
    """
    marker = Path(directory) / MARKER_FILE
    try:
        present = marker.is_file()
    except OSError:  # a folder we may list but not search: treat as unmarked
        present = False
    if not present:
        return None
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AudioError(f"{marker} cannot be read as JSON: {err}") from err
    corpus = data.get("corpus") if isinstance(data, dict) else None
    if not isinstance(corpus, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", corpus):
        raise AudioError(f'{marker} must hold {{"corpus": "<lower_case_name>"}}, got {data!r}')
    if data.get("synthetic") and corpus in CORPORA:
        raise AudioError(f"{marker} marks synthetic audio with the real corpus name {corpus!r}")
    return corpus


def relabel(labels: ClipLabels, corpus: str) -> ClipLabels:
    """Move ``labels`` to ``corpus``, re-qualifying the speaker (``ravdess_03`` -> ``x_03``)."""
    own = labels.speaker.removeprefix(f"{labels.corpus}_")
    return replace(labels, corpus=corpus, speaker=f"{corpus}_{own}")


def _declared_corpus(directory: Path, cache: dict[Path, str | None]) -> str | None:
    """Return the corpus of the nearest ``CORPUS.json`` in ``directory`` or its ancestors."""
    if directory not in cache:
        own = read_corpus_marker(directory)
        parent = directory.parent
        if own is None and parent != directory:
            own = _declared_corpus(parent, cache)
        cache[directory] = own
    return cache[directory]


def scan_folders(folders: Iterable[Path | str] | Path | str) -> ScanResult:
    """Find every labelled audio clip under ``folders``, recursively and in sorted order.

    Clips appear once even when folders are repeated or nested (or a file is linked twice).
    Hidden entries, non-audio files, unparsable names and unreadable directories go to
    ``skipped`` with a reason.  A ``CORPUS.json`` relabels every clip in its folder and below
    (the nearest one wins) and is not listed.  Raises ``FileNotFoundError`` for a missing
    folder, ``NotADirectoryError`` for a file, and ``AudioError`` for a bad ``CORPUS.json``.
    """
    if isinstance(folders, str | Path):
        folders = [folders]
    roots: list[Path] = []
    for folder in folders:
        root = Path(os.path.abspath(Path(folder).expanduser()))
        if not root.exists():
            raise FileNotFoundError(f"audio folder does not exist: {root} (given as {folder!r})")
        if not root.is_dir():
            raise NotADirectoryError(f"expected a folder of audio files, got a file: {root}")
        roots.append(root)

    result = ScanResult()
    listed: set[Path] = set()
    first_seen: dict[str, Path] = {}
    markers: dict[Path, str | None] = {}

    def skip(path: Path, reason: str) -> None:
        if path not in listed:
            listed.add(path)
            result.skipped.append((path, reason))

    def on_error(err: OSError) -> None:
        reason = f"directory cannot be read: {type(err).__name__}: {err.strerror or err}"
        skip(Path(err.filename), reason)

    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
            here = Path(dirpath)
            kept = []
            for name in sorted(dirnames):
                if name.startswith("."):
                    skip(here / name, "hidden directory (not scanned)")
                elif (here / name).is_symlink():
                    skip(here / name, "link to a directory (not followed)")
                else:
                    kept.append(name)
            dirnames[:] = kept
            for name in sorted(filenames):
                path = here / name
                if name.startswith("."):
                    skip(path, "hidden file")
                    continue
                if name == MARKER_FILE:
                    continue
                if path.suffix.lower().lstrip(".") not in AUDIO_EXTENSIONS:
                    extension = f"extension {path.suffix}" if path.suffix else "no extension"
                    skip(path, f"not an audio file ({extension})")
                    continue
                labels = parse_path(path)
                if labels is None:
                    skip(path, NO_CORPUS_REASON)
                    continue
                first = first_seen.setdefault(os.path.realpath(path), path)
                if first != path:
                    skip(path, f"same file as {first} (reached through a link)")
                    continue
                if path in listed:  # already found through an enclosing folder
                    continue
                listed.add(path)
                corpus = _declared_corpus(here, markers)
                if corpus is not None:
                    labels = relabel(labels, corpus)
                result.clips.append(ScannedClip(path, labels))
    return result
