"""Load librosa's numba kernels one process at a time, so its on-disk cache stays consistent.

librosa compiles its numba functions with ``cache=True``. Its gufuncs (``localmax``,
``localmin``, zero crossings, the parabolic interpolation behind ``yin``, beat tracking) are
compiled when their module is first imported, and numba caches each one as two files: the
kernel and the gufunc wrapper that calls it by a mangled name carrying a per-process counter
(numba issue #10128, open as of numba 0.68). When two processes compile the same functions
at staggered times on a cold cache, one can write the kernel and the other the wrapper;
every later process that loads that pair calls a symbol that does not exist and dies with a
segmentation fault.

:func:`load_librosa_kernels` makes that impossible for this project: every process that
describes audio first imports those modules, and compiles the lazily-jitted kernels it uses,
while holding an inter-process file lock beside numba's cache. Only one process at a time can
then write or read the cache, so a kernel and its wrapper always come from the same process.
It runs once per process; with a warm cache it takes about 1 s, most of it importing
librosa and SciPy, which describing audio needs anyway. A cold cache compiles for ~20 s.

Examples
--------
>>> load_librosa_kernels()  # then use librosa as usual
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np
from filelock import FileLock

#: librosa modules whose numba gufuncs and vectorised ufuncs compile eagerly on import.
#: (``librosa.beat`` has gufuncs too, but nothing here tracks beats and it takes 1.1 s to load.)
EAGER_MODULES: tuple[str, ...] = (
    "librosa.util.utils",
    "librosa.core.audio",
    "librosa.core.pitch",
)
#: How long a process waits for another to finish compiling before giving up.
LOCK_TIMEOUT_S = 600.0


def numba_cache_lock_path() -> Path:
    """The lock file guarding the numba cache that librosa's kernels are written to.

    It sits in ``NUMBA_CACHE_DIR`` when that is set, else beside librosa's own
    ``__pycache__``; where that folder is read-only, in the temporary folder, named after it.
    """
    from numba.core.config import CACHE_DIR

    if CACHE_DIR:
        folder = Path(CACHE_DIR)
    else:
        spec = importlib.util.find_spec("librosa")
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError("librosa is not installed")
        folder = Path(spec.origin).parent / "__pycache__"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder / "ser-numba-kernels.lock"
    except OSError:
        pass
    name = hashlib.blake2b(str(folder).encode(), digest_size=8).hexdigest()
    return Path(tempfile.gettempdir()) / f"ser-numba-kernels-{name}.lock"


@functools.cache
def load_librosa_kernels() -> None:
    """Import and compile librosa's numba kernels under the cache lock, once per process."""
    with FileLock(numba_cache_lock_path(), timeout=LOCK_TIMEOUT_S):
        for module in EAGER_MODULES:
            importlib.import_module(module)
        _compile_lazy_kernels()


def _compile_lazy_kernels() -> None:
    """Call the ``@jit(cache=True)`` kernels this project reaches, for both float widths.

    ``istft`` (used by pitch shifting and time stretching) runs librosa's overlap-add and
    window-envelope kernels; everything else the feature sets call is eager or pure NumPy.
    """
    import librosa

    for dtype in (np.float32, np.float64):
        tone = np.sin(np.linspace(0.0, 200.0 * np.pi, 4096)).astype(dtype)
        librosa.istft(librosa.stft(tone, n_fft=512), n_fft=512, length=len(tone))
