"""Keras runs on its torch backend here, chosen at run time by the code that needs Keras.

Keras reads ``KERAS_BACKEND`` once, when it is first imported, so the choice has to be made
before that; no module sets it on import. :func:`use_torch_backend` is called where Keras is
first needed: the Keras trainers reach Keras through :func:`lazy_keras`, which calls it on
first use, and the served model's ``load_context`` calls :func:`select_torch_backend`.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

BACKEND = "torch"
BACKEND_ENV = "KERAS_BACKEND"


def _wrong_backend(backend: str, *, imported: bool) -> ImportError:
    why = "was already imported with" if imported else "is configured for"
    return ImportError(
        f"keras {why} the {backend!r} backend; these trainers need the torch "
        f"backend: set {BACKEND_ENV}={BACKEND} before keras is first imported"
    )


def check_torch_backend() -> None:
    """Raise ImportError if Keras is already imported, or configured, for another backend.

    Changes nothing and imports nothing.
    """
    keras = sys.modules.get("keras")
    if keras is not None:
        backend = keras.backend.backend()
        if backend != BACKEND:
            raise _wrong_backend(backend, imported=True)
        return
    configured = os.environ.get(BACKEND_ENV)
    if configured and configured != BACKEND:
        raise _wrong_backend(configured, imported=False)


def select_torch_backend() -> None:
    """Set ``KERAS_BACKEND=torch`` unless a backend is set already (imports nothing)."""
    if not os.environ.get(BACKEND_ENV):
        os.environ[BACKEND_ENV] = BACKEND


def use_torch_backend() -> ModuleType:
    """Import and return ``keras`` on torch: ImportError if keras is already imported, or
    configured, for another backend (:func:`check_torch_backend`), else
    :func:`select_torch_backend` first."""
    check_torch_backend()
    select_torch_backend()
    import keras

    if keras.backend.backend() != BACKEND:  # e.g. a partly imported keras
        raise _wrong_backend(keras.backend.backend(), imported=True)
    return keras


class _LazyKeras(ModuleType):
    """Stands for ``keras``: the first attribute looked up imports it on torch."""

    def __getattr__(self, name: str) -> object:
        return getattr(use_torch_backend(), name)


def lazy_keras() -> ModuleType:
    """A stand-in for the ``keras`` module that imports it (:func:`use_torch_backend`) when
    first used, so that ``keras.layers.Dense`` and the like work in a module that must not
    import Keras, or touch ``os.environ``, when it is itself imported."""
    return _LazyKeras("keras")
