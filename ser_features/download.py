"""Fetch, verify and unpack the official RAVDESS speech archive from Zenodo.

:mod:`pooch` downloads (checking the MD5, reusing an archive already there) and unzips; what
is left here checks that the archive is safe and is RAVDESS before anything is unpacked, puts
the ``Actor_XX`` folders directly into the target folder, and turns pooch's and requests'
errors into a :class:`DownloadError` that says what to do next.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import urllib.parse
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

import pooch

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
_USER_AGENT = "ser-automl/0.1"
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

    The archive is downloaded into ``out_dir/.download/<name>`` (by pooch, through a
    temporary file that is renamed only once the MD5 matches), checked and unpacked so that
    ``out_dir/Actor_01/...wav`` exists; it is deleted after success.  An already downloaded
    archive with the right checksum is reused.

    Parameters
    ----------
    out_dir : Path or str
        Destination folder (created if missing).
    url : str
        Archive URL; defaults to the official Zenodo record.
    md5 : str
        Expected MD5 hex digest of the archive.
    progress : callable, optional
        Called as ``progress(bytes_so_far, total_bytes_or_None)`` as chunks arrive.
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
        if archive.is_file() and pooch.file_hash(str(archive), alg="md5") != expected:
            archive.unlink()  # stale; pooch would replace it, but not if the download fails
        with _quiet_pooch():
            pooch.retrieve(
                url,
                known_hash=f"md5:{expected}",
                fname=archive.name,
                path=staging,
                downloader=_Downloader(
                    progressbar=_Progress(progress) if progress is not None else False,
                    chunk_size=_CHUNK_SIZE,
                    timeout=timeout,
                    headers={"User-Agent": _USER_AGENT},
                ),
                processor=_UnpackInto(out),
            )
        archive.unlink()
    except ValueError as exc:  # pooch's checksum mismatch; it deleted the download
        got = re.search(r"but got (\w+)", str(exc))
        if got is None:
            raise DownloadError(f"could not download {url}: {exc}; {_MANUAL}.") from exc
        raise DownloadError(
            f"checksum mismatch for {url}: expected MD5 {expected}, got {got[1]}. "
            "The download is corrupt or the file on the server has changed; the "
            f"partial file was deleted. Retry later, or {_MANUAL}."
        ) from exc
    finally:
        with contextlib.suppress(OSError):  # only if empty: leave other files alone
            staging.rmdir()
    return out


class _Downloader(pooch.HTTPDownloader):
    """:class:`pooch.HTTPDownloader` whose network and HTTP errors are a DownloadError."""

    def __call__(self, url, output_file, pup, check_only=False):
        import requests

        try:
            return super().__call__(url, output_file, pup, check_only=check_only)
        except requests.HTTPError as exc:
            response = exc.response
            status = f"{response.status_code} {response.reason}" if response is not None else exc
            raise DownloadError(
                f"could not download {url}: HTTP {status}. The file may have moved; {_MANUAL}."
            ) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise DownloadError(
                f"could not download {url}: {_root_cause(exc)}. This machine may be offline "
                f"or the server unreachable; retry later, or {_MANUAL}."
            ) from exc
        except requests.RequestException as exc:  # e.g. the connection dropped mid-way
            raise DownloadError(
                f"download of {url} stopped before the end ({_root_cause(exc)}); retry, or "
                f"{_MANUAL}."
            ) from exc


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception behind a requests error, e.g. ``Connection refused``."""
    for _ in range(20):
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc


class _Progress:
    """The progress-bar object pooch updates, forwarding ``(bytes, total)`` to a callback.

    pooch counts whole chunks and ends with ``reset(); update(total)``: the count is capped
    at the total (``Content-Length``) and reported only when it grows.
    """

    def __init__(self, callback: Callable[[int, int | None], None]) -> None:
        self._callback = callback
        self.total = 0  # set by pooch; 0 when the server sends no length
        self._done = 0
        self._reported = 0

    def update(self, n: int) -> None:
        self._done = min(self._done + n, self.total) if self.total else self._done + n
        if self._done > self._reported:
            self._reported = self._done
            self._callback(self._done, self.total or None)

    def reset(self) -> None:
        self._done = 0

    def close(self) -> None:
        pass


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    """No "Downloading file ..." / "Unzipping ..." lines from pooch's logger."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _archive_name(url: str) -> str:
    name = PurePosixPath(urllib.parse.urlsplit(url).path).name
    return name if re.fullmatch(r"[\w.\-]+", name or "") else "ravdess_speech.zip"


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


class _UnpackInto:
    """A pooch processor: check the zip, unzip it with :class:`pooch.Unzip`, move the
    ``Actor_XX`` folders into ``out`` (flattening a single wrapper folder).

    Nothing is unpacked from an archive with unsafe member names or without ``Actor_XX``
    folders; such an archive is deleted.  Existing files in ``out`` are overwritten.
    """

    def __init__(self, out: Path) -> None:
        self.out = out

    def __call__(self, fname: str, action: str, pup: object) -> Path:
        archive = Path(fname)
        unzipped = archive.with_name(archive.name + ".unzip")
        try:
            strip = _check_archive(archive)
            pooch.Unzip(extract_dir=unzipped.name)(fname, "download", pup)
            for path in sorted(unzipped.rglob("*")):
                parts = path.relative_to(unzipped).parts
                if path.is_dir() or "__MACOSX" in parts:
                    continue
                dest = self.out.joinpath(*parts[strip:])
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, dest)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
            archive.unlink()
            raise DownloadError(
                f"{archive} is not a valid zip archive ({exc}); {_MANUAL}."
            ) from exc
        except DownloadError:  # unsafe or not RAVDESS: of no use; other errors keep it
            archive.unlink()
            raise
        finally:
            shutil.rmtree(unzipped, ignore_errors=True)
        return self.out


def _check_archive(archive: Path) -> int:
    """How many leading folders to strip (see :func:`_wrapper_depth`); DownloadError for
    unsafe member names (zip-slip) or an archive that is not RAVDESS."""
    with zipfile.ZipFile(archive) as zf:
        members = [(info, _member_parts(info.filename)) for info in zf.infolist()]
    paths = [
        parts for info, parts in members if parts and not info.is_dir() and "__MACOSX" not in parts
    ]
    return _wrapper_depth(paths, archive)


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
