"""Describe one clip with a feature set, turning any failure into a quarantine reason.

:func:`extract_clip` is what runs in a worker process (or on a Dask worker): it takes only
picklable arguments and never raises for bad audio, so one broken file cannot stop a run.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from ser_features.audio import Clip, load_audio, prepare
from ser_features.augmentation import augment_clip, get_augmentation
from ser_features.clip_source import clip_key, span_digest
from ser_features.corpora import ClipLabels
from ser_features.errors import AudioError
from ser_features.feature_sets import FeatureSpec, get_feature_spec

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
    return extract_batch([job], feature_set)[0]


def extract_batch(jobs: list[ClipJob], feature_set: str) -> list[ClipOutcome]:
    """Describe a batch of clips, the unit of work sent to a process or Dask worker.

    The clips that load are described together where the feature set describes batches (an
    encoder's ``ssl:`` set); if that fails, and for every other set, each clip is described on
    its own so a failure is pinned on its clip.
    """
    spec = get_feature_spec(feature_set)
    outcomes: list[ClipOutcome | None] = [None] * len(jobs)
    loaded: list[tuple[int, Clip]] = []
    for i, job in enumerate(jobs):
        try:
            loaded.append((i, _load(job, spec)))
        except Exception as exc:  # a decoder or numeric failure must quarantine, not crash
            outcomes[i] = _refused(job, exc)
    described = None
    if spec.batch_describer is not None and loaded:
        try:
            described = spec.describe_many([clip for _, clip in loaded])
        except Exception:  # described one by one below, to find the clip that fails
            described = None
    for position, (i, clip) in enumerate(loaded):
        try:
            features = described[position] if described else spec.describe(clip)
        except Exception as exc:
            outcomes[i] = _refused(jobs[i], exc)
            continue
        outcomes[i] = _described(jobs[i], clip, features)
    return [outcome for outcome in outcomes if outcome is not None]


def _load(job: ClipJob, spec: FeatureSpec) -> Clip:
    """The clip of ``job`` as ``spec`` loads it, transformed by its augmentation if any."""
    augmentation = get_augmentation(job.augmentation) if job.augmentation else None
    if augmentation is not None and augmentation.as_recorded:
        recorded = load_audio(job.path, options=spec.load.untouched, span=job.span)
        return prepare(augment_clip(recorded, augmentation, digest=job.clip_digest), spec.load)
    clip = load_audio(job.path, options=spec.load, span=job.span)
    if augmentation is not None:
        clip = augment_clip(clip, augmentation, digest=job.clip_digest)
    return clip


def _refused(job: ClipJob, exc: Exception) -> ClipOutcome:
    if isinstance(exc, AudioError):
        reason = str(exc)
    else:
        reason = f"feature extraction failed: {type(exc).__name__}: {exc}"
    return ClipOutcome(job.key, job.clip_digest, reason=reason)


def _described(job: ClipJob, clip: Clip, features: dict[str, float]) -> ClipOutcome:
    manifest = {
        "path": job.key,
        "digest": job.clip_digest,
        **asdict(job.labels),
        "start": math.nan if job.start is None else job.start,
        "end": math.nan if job.end is None else job.end,
        "duration_s": clip.duration_s,
        "original_sample_rate": clip.original_sample_rate,
        "original_channels": clip.original_channels,
    }
    return ClipOutcome(job.key, job.clip_digest, manifest=manifest, features=features)
