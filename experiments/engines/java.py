"""Where the Java runtime is: one lookup for the H2O cluster, MOJO scoring and the server.

A valid ``$JAVA_HOME`` (one with ``bin/java``) wins; otherwise ``java`` on ``PATH`` is
resolved (through symlinks such as Debian's alternatives) to its home.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

#: What to do when Java is missing.
JAVA_HINT = (
    "Install a Java runtime, e.g. `apt-get install openjdk-17-jre-headless`, "
    "or set JAVA_HOME to an existing JDK/JRE."
)


class JavaNotFoundError(RuntimeError):
    """No usable Java runtime (``JAVA_HOME`` / ``java`` on ``PATH`` / ``libjvm``)."""


def java_home_or_none(environ: Mapping[str, str] | None = None) -> Path | None:
    """Home of the Java runtime in ``environ`` (default: this process's), or ``None``.

    A valid ``JAVA_HOME`` first, else ``java`` on ``environ["PATH"]`` resolved to its home
    (e.g. ``/usr/lib/jvm/java-17-openjdk-amd64``).
    """
    env = os.environ if environ is None else environ
    home = env.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return Path(home)
    java = shutil.which("java", path=env.get("PATH"))
    if java is None:
        return None
    return Path(java).resolve().parent.parent


def find_java_home(environ: Mapping[str, str] | None = None) -> Path:
    """Like :func:`java_home_or_none`, but raise :class:`JavaNotFoundError` with the hint."""
    home = java_home_or_none(environ)
    if home is None:
        raise JavaNotFoundError(
            f"Java was not found (JAVA_HOME unset or invalid, no `java` on PATH). {JAVA_HINT}"
        )
    return home


def java_available(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a ``java`` executable is found via ``JAVA_HOME`` or ``PATH``."""
    return java_home_or_none(environ) is not None
