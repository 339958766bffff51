"""Where a clip's audio is: a whole file, or a span of a longer recording.

A clip is named by one string, its *key*: the file's path for a whole file, or the path
with a W3C Media Fragments time span for a segment (``/calls/0001.wav#t=12.5,15.25``). The
key is what the feature table's ``path`` column holds, so every table keyed by ``path``
(features, quarantine, checkpoints, a run's test clips) works for segments unchanged.

Examples
--------
>>> key = clip_key("/calls/0001.wav", 12.5, 15.25)
>>> key
'/calls/0001.wav#t=12.5,15.25'
>>> parse_clip_key(key)
('/calls/0001.wav', 12.5, 15.25)
>>> parse_clip_key("/calls/0001.wav")
('/calls/0001.wav', None, None)
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import soundfile as sf

from ser_features.errors import AudioError, undecodable_audio, unreadable_file

_SPAN = re.compile(r"^(?P<file>.+)#t=(?P<start>\d+(?:\.\d+)?),(?P<end>\d+(?:\.\d+)?)$")


def _seconds(value: float) -> str:
    """``12.5`` for 12.5 s, ``3`` for 3.0 s: millisecond precision, no trailing zeros."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def clip_key(path: str, start: float | None = None, end: float | None = None) -> str:
    """The key of the whole file ``path``, or of its span ``start``-``end`` (seconds)."""
    if start is None or end is None:
        return str(path)
    return f"{path}#t={_seconds(start)},{_seconds(end)}"


def parse_clip_key(key: str) -> tuple[str, float | None, float | None]:
    """``(file, start, end)`` of a key; start and end are None for a whole file.

    A file whose own name ends like a span (it exists on disk) is taken as a whole file.
    """
    match = _SPAN.match(str(key))
    if match is None or Path(key).exists():
        return str(key), None, None
    return match["file"], float(match["start"]), float(match["end"])


def span_digest(file_digest: str, start: float | None, end: float | None) -> str:
    """The cache key of a clip: the file's content digest, combined with the span if any."""
    if start is None or end is None:
        return file_digest
    span = f"{file_digest}#t={_seconds(start)},{_seconds(end)}"
    return hashlib.blake2b(span.encode(), digest_size=16).hexdigest()


def read_clip_bytes(key: str) -> bytes:
    """The bytes of an audio file a served model accepts for the clip ``key``.

    A whole file is returned as it is; a span is read by seeking and written as a WAV file
    (32-bit float, the recording's rate and channels), so it decodes to the same samples.
    """
    file, start, end = parse_clip_key(key)
    if start is None or end is None:
        return Path(file).read_bytes()
    data, rate = read_span(file, start, end)
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def read_span(path: str | Path, start: float, end: float):
    """Frames ``start``-``end`` s of ``path`` as float32 ``(frames, channels)`` and the rate.

    Only that span is decoded (the file is opened and seeked, never read whole). Raises
    :class:`AudioError` for an unreadable file or a span outside the recording.
    """
    name = Path(path).name
    if not 0 <= start < end:
        raise AudioError(f"{name}: segment {start}-{end} s is empty or negative (end <= start)")
    try:
        with sf.SoundFile(path) as handle:
            rate, frames = handle.samplerate, handle.frames
            duration = frames / rate
            first, last = round(start * rate), round(end * rate)
            if last > frames + round(0.01 * rate):  # 10 ms of rounding is tolerated
                raise AudioError(
                    f"{name}: segment {start:g}-{end:g} s lies outside the recording "
                    f"({duration:.2f} s long); correct its start and end"
                )
            handle.seek(first)
            data = handle.read(min(last, frames) - first, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise undecodable_audio(name, exc) from exc
    except OSError as exc:
        raise unreadable_file(name, exc) from exc
    if len(data) == 0:
        raise AudioError(f"{name}: segment {start:g}-{end:g} s holds no samples")
    return data, rate
