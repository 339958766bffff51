"""MkDocs hooks: the generated reference pages (``mkdocs.yml`` lists this file under ``hooks``).

A page holding ``<!-- generated: cli -->`` or ``<!-- generated: config -->`` gets the command
line or the experiment-file reference in its place, made from the code at build time.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")  # the families' modules read it when imported

GENERATED = {
    "<!-- generated: cli -->": "flows.cli_reference:cli_reference_markdown",
    "<!-- generated: config -->": "experiments.config_reference:config_reference_markdown",
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each generation marker of a page by the reference it names."""
    import importlib

    for marker, target in GENERATED.items():
        if marker in markdown:
            module, function = target.split(":")
            markdown = markdown.replace(
                marker, getattr(importlib.import_module(module), function)()
            )
    return markdown
