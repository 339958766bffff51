"""Tests for ser_features.download against a throw-away HTTP server on 127.0.0.1."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_features import download
from ser_features.download import DownloadError, download_ravdess

NAMES = {
    "Actor_01": ["03-01-01-01-01-01-01.wav", "03-01-05-02-02-01-01.wav"],
    "Actor_02": ["03-01-03-01-01-01-02.wav", "03-01-04-02-01-01-02.wav"],
}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep pytest output clean
        pass


@pytest.fixture
def server(tmp_path: Path):
    """Serve ``tmp_path/www`` over HTTP on 127.0.0.1; yield (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _wav_bytes(tmp_path: Path, seed: int) -> bytes:
    path = tmp_path / f"tone{seed}.wav"
    rng = np.random.default_rng(seed)
    y = 0.1 * np.sin(2 * np.pi * 220 * np.arange(4000) / 16000) + 0.01 * rng.normal(size=4000)
    sf.write(path, y, 16000, subtype="PCM_16")
    return path.read_bytes()


def _make_zip(path: Path, tmp_path: Path, *, prefix: str = "") -> str:
    """Write a RAVDESS-like zip (optionally wrapped in ``prefix``); return its MD5."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i, (actor, names) in enumerate(NAMES.items()):
            for j, name in enumerate(names):
                zf.writestr(f"{prefix}{actor}/{name}", _wav_bytes(tmp_path, 10 * i + j))
    return hashlib.md5(path.read_bytes()).hexdigest()


def _assert_unpacked(out: Path) -> None:
    for actor, names in NAMES.items():
        for name in names:
            y, sr = sf.read(out / actor / name)
            assert sr == 16000 and y.size == 4000


def test_success_unpacks_and_removes_archive(server, tmp_path, monkeypatch):
    www, base = server
    md5 = _make_zip(www / "Audio_Speech_Actors_01-24.zip", tmp_path)
    monkeypatch.setattr(download, "_CHUNK_SIZE", 4096)
    calls: list[tuple[int, int | None]] = []
    out = tmp_path / "ravdess"
    url = f"{base}/Audio_Speech_Actors_01-24.zip?download=1"
    result = download_ravdess(out, url=url, md5=md5, progress=lambda d, t: calls.append((d, t)))
    assert result == out
    _assert_unpacked(out)
    assert not (out / ".download").exists()
    assert not list(out.rglob("*.zip")) and not list(out.rglob("*.part"))
    size = (www / "Audio_Speech_Actors_01-24.zip").stat().st_size
    done = [d for d, _ in calls]
    assert len(calls) > 2 and done == sorted(set(done)) and done[-1] == size
    assert all(t == size for _, t in calls)


def test_wrapper_folder_is_flattened(server, tmp_path):
    www, base = server
    md5 = _make_zip(www / "wrapped.zip", tmp_path, prefix="Audio_Speech_Actors_01-24/")
    out = download_ravdess(tmp_path / "out", url=f"{base}/wrapped.zip", md5=md5)
    _assert_unpacked(out)
    assert not (out / "Audio_Speech_Actors_01-24").exists()


def test_checksum_mismatch_raises_and_leaves_nothing(server, tmp_path):
    www, base = server
    md5 = _make_zip(www / "a.zip", tmp_path)
    out = tmp_path / "out"
    with pytest.raises(DownloadError) as info:
        download_ravdess(out, url=f"{base}/a.zip", md5="0" * 32)
    message = str(info.value)
    assert "0" * 32 in message and md5 in message and "ser extract" in message
    assert not list(out.iterdir())


def test_zip_slip_is_rejected(server, tmp_path):
    www, base = server
    evil = www / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("Actor_01/03-01-01-01-01-01-01.wav", _wav_bytes(tmp_path, 0))
        zf.writestr("../escaped.wav", b"gotcha")
    md5 = hashlib.md5(evil.read_bytes()).hexdigest()
    out = tmp_path / "deep" / "out"
    with pytest.raises(DownloadError, match="unsafe"):
        download_ravdess(out, url=f"{base}/evil.zip", md5=md5)
    assert not (tmp_path / "deep" / "escaped.wav").exists()
    assert not (out / "Actor_01").exists()
    assert not list(out.rglob("*.zip"))


def test_absolute_member_is_rejected(server, tmp_path):
    www, base = server
    evil = www / "abs.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("/tmp/Actor_01/x.wav", b"gotcha")
    md5 = hashlib.md5(evil.read_bytes()).hexdigest()
    with pytest.raises(DownloadError, match="unsafe"):
        download_ravdess(tmp_path / "out", url=f"{base}/abs.zip", md5=md5)


def test_http_404_raises(server, tmp_path):
    _, base = server
    with pytest.raises(DownloadError, match="404"):
        download_ravdess(tmp_path / "out", url=f"{base}/missing.zip", md5="0" * 32)
    assert not list((tmp_path / "out").iterdir())


def test_unreachable_server_says_offline(tmp_path):
    with socket.socket() as sock:  # a port on 127.0.0.1 that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/a.zip"
    with pytest.raises(DownloadError) as info:
        download_ravdess(tmp_path / "out", url=url, md5="0" * 32, timeout=5)
    message = str(info.value)
    assert url in message and "offline" in message and "ser extract" in message


def test_existing_archive_with_right_md5_skips_download(tmp_path):
    out = tmp_path / "out"
    (out / ".download").mkdir(parents=True)
    md5 = _make_zip(out / ".download" / "cached.zip", tmp_path)
    url = "http://127.0.0.1:9/cached.zip"  # nothing is fetched, so nothing must answer
    assert download_ravdess(out, url=url, md5=md5) == out
    _assert_unpacked(out)
    assert not (out / ".download").exists()


def test_stale_archive_with_wrong_md5_is_downloaded_again(server, tmp_path):
    www, base = server
    md5 = _make_zip(www / "a.zip", tmp_path)
    out = tmp_path / "out"
    (out / ".download").mkdir(parents=True)
    (out / ".download" / "a.zip").write_bytes(b"truncated garbage")
    download_ravdess(out, url=f"{base}/a.zip", md5=md5.upper())
    _assert_unpacked(out)
    assert not (out / ".download").exists()
