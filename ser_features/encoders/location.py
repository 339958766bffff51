"""Where a pretrained encoder's files are, and exactly which encoder they hold.

An encoder is named by a Hugging Face hub id (``microsoft/wavlm-base-plus``) or a local
folder in the hub's layout (``config.json``, ``preprocessor_config.json``, weights as
``*.safetensors`` or ``pytorch_model*.bin``). A hub id is read from the hub cache
(``HF_HOME``); with ``HF_HUB_OFFLINE=1`` nothing is downloaded. Its identity is the name, the
revision (the hub commit the cached snapshot is of; none for a local folder) and a SHA-256 of
its weight files: that identity is part of the feature cache key and is logged with every
run, so features and served models never silently change encoder.

A served model carries a copy of its encoder (:func:`carry_encoder`); loading the model
registers that copy (:func:`use_carried_encoders`), after checking its checksum, so the
server needs neither the hub nor its cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

#: Files of an encoder folder that describing clips needs (weights are found by pattern).
CONFIG_FILES = ("config.json", "preprocessor_config.json")
SAFETENSORS = "*.safetensors"
TORCH_BINARIES = "pytorch_model*.bin"
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
#: Where a served model's predictor folder keeps its encoders, and their list.
CARRIED_DIR = "encoders"
CARRIED_FILE = "encoders.json"

_CARRIED: dict[str, EncoderIdentity] = {}


class EncoderNotFound(ValueError):
    """An encoder that cannot be found or read, with what to do about it."""


@dataclass(frozen=True)
class EncoderIdentity:
    """An encoder exactly: what the user named, where its files are, which revision, and
    the SHA-256 of its weights."""

    source: str
    folder: Path
    revision: str | None
    checksum: str

    @property
    def fingerprint(self) -> str:
        """``source@revision#checksum``: what the feature cache key holds of the encoder."""
        return f"{self.source}@{self.revision or 'local'}#sha256:{self.checksum}"

    def as_params(self, prefix: str = "encoder") -> dict[str, str]:
        """The identity as run parameters."""
        return {
            f"{prefix}.source": self.source,
            f"{prefix}.revision": self.revision or "local folder",
            f"{prefix}.weights_sha256": self.checksum,
        }


def locate_encoder(source: str) -> EncoderIdentity:
    """The encoder called ``source``: a copy carried by a loaded served model, a local
    folder, or a hub id from the hub cache (downloaded unless ``HF_HUB_OFFLINE=1``)."""
    carried = _CARRIED.get(source)
    if carried is not None and (carried.folder / "config.json").is_file():
        return carried
    _CARRIED.pop(source, None)  # a copy whose model folder is gone (a finished training's)
    folder = Path(source).expanduser()
    if folder.is_dir():
        return _identity(source, folder.resolve(), revision=None)
    if source.startswith(("/", ".", "~")) or source.count("/") > 1:
        raise EncoderNotFound(
            f"encoder folder {source!r} does not exist; give a folder holding config.json, "
            "preprocessor_config.json and the weights (*.safetensors or pytorch_model.bin)"
        )
    snapshot = _hub_snapshot(source)
    return _identity(source, snapshot, revision=snapshot.name)


def _hub_snapshot(repo_id: str) -> Path:
    """The cached snapshot folder of hub model ``repo_id`` (fetched when online)."""
    from huggingface_hub import constants, snapshot_download

    offline = bool(constants.HF_HUB_OFFLINE)
    try:
        folder = snapshot_download(
            repo_id,
            allow_patterns=[*CONFIG_FILES, *WEIGHT_INDEXES, SAFETENSORS, TORCH_BINARIES],
            local_files_only=offline,
        )
    except Exception as exc:  # the hub's errors differ by cause; all mean "not available"
        where = "in the Hugging Face cache" if offline else "on the Hugging Face hub"
        raise EncoderNotFound(
            f"encoder {repo_id!r} is not {where} ({type(exc).__name__}); download it where "
            f"the hub is reachable (`hf download {repo_id}`, cache: {constants.HF_HUB_CACHE}) "
            f"or name a local folder with its files (`ssl:/path/to/folder`)"
        ) from None
    return Path(folder)


def weight_files(folder: Path) -> list[Path]:
    """The weight files ``transformers`` would load from ``folder`` (safetensors first)."""
    for pattern in (SAFETENSORS, TORCH_BINARIES):
        found = sorted(folder.glob(pattern))
        if found:
            return found
    return []


def _identity(source: str, folder: Path, *, revision: str | None) -> EncoderIdentity:
    if not (folder / "config.json").is_file():
        raise EncoderNotFound(f"encoder {source!r}: {folder} has no config.json")
    weights = weight_files(folder)
    if not weights:
        raise EncoderNotFound(
            f"encoder {source!r}: {folder} has no weights (*.safetensors or pytorch_model.bin)"
        )
    stamps = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in weights)
    return EncoderIdentity(source, folder, revision, _checksum(stamps))


@functools.lru_cache(maxsize=16)
def _checksum(stamps: tuple[tuple[str, int, int], ...]) -> str:
    """SHA-256 over the weight files' names and bytes (cached while they are unchanged)."""
    digest = hashlib.sha256()
    for path, _size, _mtime in stamps:
        digest.update(Path(path).name.encode())
        with open(path, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def carry_encoder(identity: EncoderIdentity, directory: Path) -> Path:
    """Copy the encoder's files into ``directory/encoders/<n>`` and list it in
    ``directory/encoders.json``; returns the copy's folder."""
    listed = _carried_list(directory)
    if any(entry["source"] == identity.source for entry in listed):
        return directory / next(e["folder"] for e in listed if e["source"] == identity.source)
    relative = f"{CARRIED_DIR}/{len(listed)}"
    target = directory / relative
    target.mkdir(parents=True, exist_ok=True)
    names = [*CONFIG_FILES, *WEIGHT_INDEXES]
    files = [identity.folder / n for n in names if (identity.folder / n).is_file()]
    for path in [*files, *weight_files(identity.folder)]:
        shutil.copyfile(path, target / path.name)  # follows the hub cache's symlinks
    listed.append(
        {
            "source": identity.source,
            "folder": relative,
            "revision": identity.revision,
            "weights_sha256": identity.checksum,
        }
    )
    (directory / CARRIED_FILE).write_text(json.dumps(listed, indent=2))
    return target


def carried_encoders(directory: Path) -> list[EncoderIdentity]:
    """The encoders a predictor folder carries, each checked against its recorded checksum."""
    identities = []
    for entry in _carried_list(directory):
        found = _identity(entry["source"], directory / entry["folder"], revision=entry["revision"])
        if found.checksum != entry["weights_sha256"]:
            raise EncoderNotFound(
                f"{directory / entry['folder']}: the weights of encoder {entry['source']!r} "
                f"changed since the model was trained (sha256 {found.checksum[:12]}..., "
                f"recorded {entry['weights_sha256'][:12]}...); restore them or retrain"
            )
        identities.append(found)
    return identities


def use_carried_encoders(directory: Path) -> list[EncoderIdentity]:
    """Describe clips with the encoders ``directory`` carries from now on in this process."""
    identities = carried_encoders(Path(directory))
    for identity in identities:
        _CARRIED[identity.source] = identity
    return identities


def _carried_list(directory: Path) -> list[dict]:
    path = Path(directory) / CARRIED_FILE
    return json.loads(path.read_text()) if path.is_file() else []
