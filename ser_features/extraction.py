"""Describe one clip with a feature set, turning any failure into a quarantine reason.

:func:`extract_clip` is what runs in a worker process (or on a Dask worker): it takes only
picklable arguments and never raises for bad audio, so one broken file cannot stop a run.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from ser_features.audio import load_audio, prepare
from ser_features.augmentation import augment_clip, get_augmentation
from ser_features.clip_source import clip_key, span_digest
from ser_features.corpora import ClipLabels
from ser_features.errors import AudioError
from ser_features.feature_sets import get_feature_spec

#: Columns of the manifest, in order; the feature table starts with the same columns.
#: ``path`` is the clip's key (:func:`~ser_features.clip_source.clip_key`): a file, or a span
#: of one (``start``/``end`` in seconds, NaN for whole files); ``digest`` is its cache key.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "path",
    "digest",
    "corpus",
    "speaker",
    "gender",
    "emotion",
    "intensity",
    "statement",
    "vocal_channel",
    "session",
    "grouped_by",
    "start",
    "end",
    "duration_s",
    "original_sample_rate",
    "original_channels",
)


def content_digest(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """BLAKE2b-128 hex digest of the file's bytes: the cache key of its features."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ClipJob:
    """One clip to describe: its file, the file's content digest, its labels, and with
    ``start``/``end`` (seconds) the span of a longer recording it is.

    With ``augmentation`` (a name from :data:`~ser_features.augmentation.AUGMENTATIONS`),
    the clip is transformed before it is described; the row keeps the source's path and
    digest, so a split can tell which clip a copy came from.
    """

    path: str
    digest: str
    labels: ClipLabels
    augmentation: str | None = None
    start: float | None = None
    end: float | None = None

    @property
    def key(self) -> str:
        """The clip's key: its row's ``path`` in every table."""
        return clip_key(self.path, self.start, self.end)

    @property
    def clip_digest(self) -> str:
        """The clip's cache key: the file's digest, with the span for a segment."""
        return span_digest(self.digest, self.start, self.end)

    @property
    def span(self) -> tuple[float, float] | None:
        """``(start, end)`` of a segment, None for a whole file."""
        if self.start is None or self.end is None:
            return None
        return (self.start, self.end)


@dataclass(frozen=True)
class ClipOutcome:
    """The result for one file: a manifest row and features, or the reason it was refused."""

    path: str
    digest: str
    manifest: dict[str, object] | None = None
    features: dict[str, float] | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when features were computed."""
        return self.reason is None


def extract_clip(job: ClipJob, feature_set: str) -> ClipOutcome:
    """Load, validate and describe ``job`` with the feature set called ``feature_set``."""
    spec = get_feature_spec(feature_set)
    key, digest = job.key, job.clip_digest
    try:
        augmentation = get_augmentation(job.augmentation) if job.augmentation else None
        if augmentation is not None and augmentation.as_recorded:
            recorded = load_audio(job.path, options=spec.load.untouched, span=job.span)
            clip = prepare(augment_clip(recorded, augmentation, digest=digest), spec.load)
        else:
            clip = load_audio(job.path, options=spec.load, span=job.span)
            if augmentation is not None:
                clip = augment_clip(clip, augmentation, digest=digest)
        features = spec.describe(clip)
    except AudioError as exc:
        return ClipOutcome(key, digest, reason=str(exc))
    except Exception as exc:  # a decoder or numeric failure must quarantine, not crash the run
        return ClipOutcome(
            key, digest, reason=f"feature extraction failed: {type(exc).__name__}: {exc}"
        )
    manifest = {
        "path": key,
        "digest": digest,
        **asdict(job.labels),
        "start": math.nan if job.start is None else job.start,
        "end": math.nan if job.end is None else job.end,
        "duration_s": clip.duration_s,
        "original_sample_rate": clip.original_sample_rate,
        "original_channels": clip.original_channels,
    }
    return ClipOutcome(key, digest, manifest=manifest, features=features)


def extract_batch(jobs: list[ClipJob], feature_set: str) -> list[ClipOutcome]:
    """:func:`extract_clip` over a batch, the unit of work sent to a process or Dask worker."""
    return [extract_clip(job, feature_set) for job in jobs]
