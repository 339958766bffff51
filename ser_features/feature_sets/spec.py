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
    """

    name: str
    version: int
    description: str
    load: LoadOptions
    describer: Callable[[Clip], dict[str, float]]

    def describe(self, clip: Clip) -> dict[str, float]:
        """The feature values of ``clip`` (librosa's numba kernels are loaded safely first)."""
        load_librosa_kernels()
        return self.describer(clip)

    @property
    def tag(self) -> str:
        """``name@vN``, the cache and metadata key."""
        return f"{self.name}@v{self.version}"
