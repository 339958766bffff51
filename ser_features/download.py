"""Fetch, verify and unpack the official RAVDESS speech archive from Zenodo."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = [
    "RAVDESS_SPEECH_MD5",
    "RAVDESS_SPEECH_URL",
    "DownloadError",
    "download_ravdess",
]

RAVDESS_SPEECH_URL = (
    "https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1"
)
RAVDESS_SPEECH_MD5 = "bc696df654c87fed845eb13823edef8a"

_CHUNK_SIZE = 1 << 18
_ACTOR_DIR = re.compile(r"^Actor_\d+$")
_MANUAL = (
    "download it manually (e.g. in a browser), unzip it and pass the folder that contains "
    "the Actor_XX directories to `ser extract`"
)


class DownloadError(RuntimeError):
    """A download that failed, with the URL, the reason and what to do instead."""


def download_ravdess(
    out_dir: Path | str,
    *,
    url: str = RAVDESS_SPEECH_URL,
    md5: str = RAVDESS_SPEECH_MD5,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download the RAVDESS speech archive, check its MD5 and unpack it into ``out_dir``.

    The archive is streamed to ``out_dir/.download/<name>.part``, verified, renamed and
    unpacked so that ``out_dir/Actor_01/...wav`` exists; it is deleted after success.  An
    already downloaded archive with the right checksum is reused.

    Parameters
    ----------
    out_dir : Path or str
        Destination folder (created if missing).
    url : str
        Archive URL; defaults to the official Zenodo record.
    md5 : str
        Expected MD5 hex digest of the archive.
    progress : callable, optional
        Called as ``progress(bytes_so_far, total_bytes_or_None)`` after every chunk.
    timeout : float
        Socket timeout in seconds.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    DownloadError
        On network or HTTP errors, a checksum mismatch, or an unsafe or invalid archive.
    """
    out = Path(out_dir)
    staging = out / ".download"
    staging.mkdir(parents=True, exist_ok=True)
    archive = staging / _archive_name(url)
    expected = md5.strip().lower()
    try:
        if archive.is_file() and _md5(archive) != expected:
            archive.unlink()
        if not archive.is_file():
            _fetch_verified(url, archive, expected, progress=progress, timeout=timeout)
        try:
            _unpack(archive, out)
        except DownloadError:  # an unsafe or invalid archive is of no use; other errors keep it
            archive.unlink()
            raise
        archive.unlink()
    finally:
        with contextlib.suppress(OSError):  # only if empty: leave other files alone
            staging.rmdir()
    return out


def _fetch_verified(url: str, archive: Path, expected: str, **kwargs) -> None:
    """Download to ``<archive>.part``, check the MD5, then rename it to ``archive``."""
    part = archive.with_name(archive.name + ".part")
    try:
        actual = _fetch(url, part, **kwargs)
        if actual != expected:
            raise DownloadError(
                f"checksum mismatch for {url}: expected MD5 {expected}, got {actual}. "
                "The download is corrupt or the file on the server has changed; the "
                f"partial file was deleted. Retry later, or {_MANUAL}."
            )
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, archive)


def _archive_name(url: str) -> str:
    name = PurePosixPath(urllib.parse.urlsplit(url).path).name
    return name if re.fullmatch(r"[\w.\-]+", name or "") else "ravdess_speech.zip"


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, part: Path, *, progress: Callable | None, timeout: float) -> str:
    """Stream ``url`` into ``part``; return the MD5 hex digest of the bytes received."""
    request = urllib.request.Request(url, headers={"User-Agent": "ser-automl/0.1"})
    digest, done = hashlib.md5(), 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, part.open("wb") as fh:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            while chunk := response.read(_CHUNK_SIZE):
                fh.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"could not download {url}: HTTP {exc.code} {exc.reason}. The file may have moved; "
            f"{_MANUAL}."
        ) from exc
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"could not download {url}: {reason}. This machine may be offline or the server "
            f"unreachable; retry later, or {_MANUAL}."
        ) from exc
    if total is not None and done != total:
        raise DownloadError(
            f"download of {url} stopped after {done} of {total} bytes; retry, or {_MANUAL}."
        )
    return digest.hexdigest()


def _member_parts(name: str) -> tuple[str, ...]:
    """Path components of a zip member; raise DownloadError for zip-slip names."""
    win = PureWindowsPath(name)
    parts = tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))
    if name.startswith(("/", "\\")) or win.drive or win.is_absolute() or ".." in parts:
        raise DownloadError(
            f"refusing to unpack unsafe archive member {name!r}: absolute paths and '..' "
            "could write outside the target folder. The archive is not the official one."
        )
    return parts


def _unpack(archive: Path, out: Path) -> None:
    """Unpack the RAVDESS zip into ``out``, flattening a single wrapper folder."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [(info, _member_parts(info.filename)) for info in zf.infolist()]
            members = [
                (info, parts)
                for info, parts in members
                if parts and not info.is_dir() and "__MACOSX" not in parts
            ]
            strip = _wrapper_depth([parts for _, parts in members], archive)
            root = out.resolve()
            for info, parts in members:
                dest = out.joinpath(*parts[strip:])
                if not dest.resolve().is_relative_to(root):
                    raise DownloadError(f"refusing to unpack {info.filename!r} outside {out}")
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, dest.open("wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK_SIZE)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise DownloadError(f"{archive} is not a valid zip archive ({exc}); {_MANUAL}.") from exc


def _wrapper_depth(paths: list[tuple[str, ...]], archive: Path) -> int:
    """0 if Actor_XX folders sit at the root, 1 if a single top folder wraps them."""
    if any(len(p) > 1 and _ACTOR_DIR.match(p[0]) for p in paths):
        return 0
    tops = {p[0] for p in paths}
    if len(tops) == 1 and any(len(p) > 2 and _ACTOR_DIR.match(p[1]) for p in paths):
        return 1
    raise DownloadError(
        f"{archive} contains no Actor_XX folders, so it is not the RAVDESS speech archive; "
        f"{_MANUAL}."
    )
