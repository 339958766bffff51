"""The package's single error type for bad audio and bad parameters."""

from __future__ import annotations


class AudioError(ValueError):
    """Audio that cannot be used, with a reason a person understands.

    Raised for unreadable, truncated, empty, silent or non-finite audio.  The message
    says what is wrong and, where possible, what to do about it.

    Examples
    --------
    >>> raise AudioError("file is empty (0 bytes): re-export or re-copy it")
    Traceback (most recent call last):
    ...
    ser_features.errors.AudioError: file is empty (0 bytes): re-export or re-copy it
    """


def undecodable_audio(name: str, exc: Exception) -> AudioError:
    """The error for bytes libsndfile cannot decode, named ``name``, with what to do."""
    reason = str(exc).split(": ", 1)[-1] if "Error opening" in str(exc) else str(exc)
    return AudioError(
        f"{name}: not decodable audio ({reason}); the file may be truncated, corrupt or in "
        "a format libsndfile cannot read (convert it to WAV or FLAC)"
    )


def unreadable_file(name: str, exc: OSError) -> AudioError:
    """The error for a file the system cannot read, named ``name``."""
    return AudioError(f"{name}: cannot read the file ({exc.strerror or exc})")
