"""What a named, versioned feature set is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ser_features.audio import Clip, LoadOptions
from ser_features.numba_kernels import load_librosa_kernels


@dataclass(frozen=True)
class FeatureSpec:
    """A named, versioned recipe: how clips are loaded and which numbers describe them.

    The ``version`` changes whenever the numbers a spec produces would change, so cached
    features are reused only when they are exactly what the spec computes now.

    Parameters
    ----------
    name : short identifier used on the command line (``--features NAME``).
    version : integer bumped on any change of output.
    description : one line for people.
    load : preprocessing every clip receives before description.
    describer : maps a loaded :class:`Clip` to ``{column: value}``, always the same columns;
        call it through :meth:`describe`.
    batch_describer : describes several clips at once where that is faster (a neural
        encoder); call it through :meth:`describe_many`.
    fingerprint : what else the numbers depend on that the name and version cannot say (a
        pretrained encoder's revision and weights checksum); part of the cache key.
    """

    name: str
    version: int
    description: str
    load: LoadOptions
    describer: Callable[[Clip], dict[str, float]]
    batch_describer: Callable[[list[Clip]], list[dict[str, float]]] | None = None
    fingerprint: str = ""

    def describe(self, clip: Clip) -> dict[str, float]:
        """The feature values of ``clip`` (librosa's numba kernels are loaded safely first)."""
        load_librosa_kernels()
        return self.describer(clip)

    def describe_many(self, clips: list[Clip]) -> list[dict[str, float]]:
        """The feature values of each of ``clips``, in one batch where the set has one."""
        load_librosa_kernels()
        if self.batch_describer is None:
            return [self.describer(clip) for clip in clips]
        return self.batch_describer(clips)

    @property
    def tag(self) -> str:
        """``name@vN``, the cache and metadata key."""
        return f"{self.name}@v{self.version}"

    @property
    def cache_key(self) -> str:
        """The tag with the fingerprint, when the set has one: what cached rows must match."""
        return f"{self.tag}#{self.fingerprint}" if self.fingerprint else self.tag
