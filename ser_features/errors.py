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
