"""The experiment-file reference, generated from the typed configuration and the family
registry, so the documentation cannot drift from what ``load_config`` accepts."""

from __future__ import annotations

import inspect
import re
import types
import typing
from typing import Any, get_type_hints

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from experiments.config import ExperimentFile
from experiments.families import CV_OVERRIDES, FAMILIES, FEATURES


def config_reference_markdown() -> str:
    """Markdown tables of every experiment-file key, section by section, then every family's
    options with their types and defaults."""
    lines: list[str] = []
    _section(lines, ExperimentFile, "", level=2)
    lines += [
        "## `trainers.<family>`",
        "",
        "Each family takes the options below (the trainer's defaults hold for the ones not "
        f"set), plus `{CV_OVERRIDES}` (some of its options, used inside cross-validation "
        f"folds) and `{FEATURES}` (the part of a combined feature set it reads).",
        "",
    ]
    for name, family in FAMILIES.items():
        lines += [f"### `{name}`", "", family.summary + ".", ""]
        trainer = family.build(seed=0)  # an unfitted trainer holds its defaults
        lines += ["| option | type | default |", "|---|---|---|"]
        for option, hint in get_type_hints(family.options).items():
            default = getattr(trainer, option, None)
            if default is None and option == "param_grid":
                default = getattr(trainer, "default_grid", None)
            lines.append(f"| `{option}` | {_type(hint)} | {_value(default)} |")
        lines.append("")
    return "\n".join(lines)


def _section(lines: list[str], model: type[BaseModel], prefix: str, *, level: int) -> None:
    """One table for ``model``'s plain keys, then a heading and table per sub-section."""
    nested: list[tuple[str, type[BaseModel]]] = []
    rows = []
    for key, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested.append((key, annotation))
        rows.append(f"| `{prefix}{key}` | {_type(annotation)} | {_default(field)} | "
                    f"{field.description or ''} |")  # fmt: skip
    title = f"`{prefix.rstrip('.')}`" if prefix else "Top level"
    lines += [f"{'#' * level} {title}", ""]
    doc = inspect.getdoc(model) or ""
    if doc:
        lines += [doc.split("\n\n")[0].replace("\n", " "), ""]
    lines += ["| key | type | default | meaning |", "|---|---|---|---|", *rows, ""]
    for key, sub in nested:
        _section(lines, sub, f"{prefix}{key}.", level=level + 1 if prefix else level)


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return _value(field.default_factory())  # type: ignore[call-arg]
    if isinstance(field.default, BaseModel):
        return "(section)"
    return _value(field.default)


def _value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return f'`"{value}"`' if value else '`""`'
    if isinstance(value, tuple | list) and not value:
        return "`[]`"
    return f"`{value!r}`".replace("|", "\\|")


def _type(annotation: Any) -> str:
    """A short, readable name of a type annotation (``list of str``, ``int or none``)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " or ".join(f"`{a!r}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a) for a in args)
    if origin in (tuple, list):
        return f"list of {_type(args[0])}" if args else "list"
    if origin is dict:
        if not args:
            return "mapping"
        value = _type(args[1])
        return f"mapping of {_type(args[0])} to {f'({value})' if ' or ' in value else value}"
    if annotation is type(None):
        return "none"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    name = getattr(annotation, "__name__", str(annotation))
    return re.sub(r"typing\.", "", name)
