"""Several feature sets describing the same clip side by side: ``compare2016+logmel_frames``.

The combined set loads a clip once at the rate its parts share, without trimming, loudness
normalisation or noise floor, and gives every part the clip its own :class:`LoadOptions`
would have made (trimmed, normalised and levelled as that part asks). Column names of the
parts must be disjoint; a model family reads the part it was trained on (the ``features``
option of a family).
"""

from __future__ import annotations

import functools

from ser_features.audio import Clip, LoadOptions, prepare
from ser_features.feature_sets.spec import FeatureSpec

#: Joins the names of the parts: ``compare2016+logmel_frames``.
SEPARATOR = "+"


def part_clip(clip: Clip, options: LoadOptions) -> Clip:
    """``clip`` (loaded untrimmed at the shared rate) as ``options`` would have loaded it."""
    if options == options.untouched:
        return clip
    return prepare(clip, options)


def combine(parts: tuple[FeatureSpec, ...]) -> FeatureSpec:
    """One spec describing a clip with every part; columns must not collide."""
    if len(parts) < 2:
        raise ValueError("a combined feature set needs at least two parts")
    rates = {part.load.sample_rate for part in parts}
    if len(rates) != 1:
        raise ValueError(f"feature sets to combine must share a sample rate, got {sorted(rates)}")

    def describe_many(clips: list[Clip]) -> list[dict[str, float]]:
        out: list[dict[str, float]] = [{} for _ in clips]
        for part in parts:
            described = part.describe_many([part_clip(clip, part.load) for clip in clips])
            for row, values in zip(out, described, strict=True):
                clash = row.keys() & values.keys()
                if clash:
                    raise ValueError(
                        f"{part.name} repeats columns of another part: {sorted(clash)[:5]}"
                    )
                row.update(values)
        return out

    def describe(clip: Clip) -> dict[str, float]:
        return describe_many([clip])[0]

    return FeatureSpec(
        name=SEPARATOR.join(part.name for part in parts),
        # a change of any part's version changes the combination's
        version=sum(part.version * 1000**i for i, part in enumerate(parts)),
        description=" + ".join(part.description for part in parts),
        load=LoadOptions(sample_rate=rates.pop()),
        describer=describe,
        batch_describer=describe_many if any(p.batch_describer for p in parts) else None,
        fingerprint=SEPARATOR.join(part.fingerprint for part in parts if part.fingerprint),
    )


@functools.lru_cache(maxsize=32)
def combined(names: tuple[str, ...]) -> FeatureSpec:
    """The combination of the registered feature sets ``names`` (cached)."""
    from ser_features.feature_sets import get_feature_spec

    return combine(tuple(get_feature_spec(name) for name in names))
