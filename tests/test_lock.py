"""The installed environment is exactly ``requirements.lock``, and the lock satisfies pyproject."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", re.MULTILINE)


def locked_versions() -> dict[str, str]:
    """``{canonical name: version}`` of every distribution in the lock."""
    text = (ROOT / "requirements.lock").read_text()
    return {canonicalize_name(name): version for name, version in PIN.findall(text)}


def test_every_locked_distribution_has_hashes():
    text = (ROOT / "requirements.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text[text.index("\n", text.rindex("# Refresh")) :])
    pinned = [block for block in blocks if PIN.match(block.strip())]
    assert len(pinned) == len(locked_versions()) > 100
    for block in pinned:
        assert "--hash=sha256:" in block, block.splitlines()[0]


def test_installed_versions_are_the_locked_ones():
    locked = locked_versions()
    installed = {
        canonicalize_name(dist.metadata["Name"]): dist.version for dist in metadata.distributions()
    }
    differing = {
        name: (version, installed.get(name))
        for name, version in locked.items()
        if installed.get(name) != version
    }
    assert not differing, f"installed differs from the lock (locked, installed): {differing}"


def test_lock_satisfies_every_requirement_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    locked = locked_versions() | {"torch": metadata.version("torch").split("+")[0]}
    unmet = []
    for line in requirements:
        requirement = Requirement(line)
        version = locked.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            unmet.append(f"{line} (locked: {version})")
    assert not unmet, "refresh the lock (bash scripts/refresh_lock.sh): " + ", ".join(unmet)
