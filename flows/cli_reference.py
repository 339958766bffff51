"""The command-line reference, generated from the ``ser`` commands themselves (their help,
arguments and options), so the documentation cannot drift from the code."""

from __future__ import annotations

import inspect
import re
from typing import Any

import typer.main

from flows.cli import app


def cli_reference_markdown() -> str:
    """Markdown: one section per ``ser`` command and sub-command, with its usage, help text,
    arguments and options."""
    root = typer.main.get_command(app)
    lines: list[str] = []
    with root.context_class(root, info_name="ser") as context:
        _command(lines, root, context, "ser")
    return "\n".join(lines)


def _command(lines: list[str], command: Any, context: Any, path: str) -> None:
    """Typer's click command ``command`` and, for a group, each sub-command in turn."""
    if path != "ser":
        lines += [f"## `{path}`", ""]
    usage = re.sub(r"\{(\w+)\}", lambda m: m[1].upper(), command.get_usage(context).strip())
    lines += ["```text", usage, "```", ""]
    if command.help:
        lines += [inspect.cleandoc(command.help).replace("\b\n", ""), ""]
    rows = [row for param in command.get_params(context) if (row := _row(param))]
    if rows:
        lines += ["| argument or option | help | default |", "|---|---|---|", *rows, ""]
    if hasattr(command, "list_commands"):
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            if sub is None or sub.hidden:
                continue
            with sub.context_class(sub, info_name=name, parent=context) as sub_context:
                _command(lines, sub, sub_context, f"{path} {name}")


def _row(param: Any) -> str:
    """One table row for ``param`` (empty for ``--help``)."""
    if param.name == "help":
        return ""
    if param.param_type_name == "argument":
        name = f"`{(param.metavar or param.name).upper()}`" + (
            "" if param.required else " (optional)"
        )
    else:
        name = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
    help_text = " ".join((getattr(param, "help", None) or "").split()).replace("|", r"\|")
    default = param.default
    empty = default is None or (isinstance(default, tuple | list) and not default)
    shown = "" if empty or param.required else f"`{default}`"
    return f"| {name} | {help_text} | {shown} |"
