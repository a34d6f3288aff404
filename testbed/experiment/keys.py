"""The config keys as users meet them: every key with its type, default and meaning, read
from :class:`ExperimentConfig` itself (the docstring under each field), so the listing
``testbed config`` prints cannot drift from the code; and messages of the layers below
said in those keys."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from dataclasses import dataclass

from testbed.experiment.config import ExperimentConfig
from testbed.experiment.values import value_text


@dataclass(frozen=True)
class ConfigKey:
    name: str
    type: str  # as a user writes it: int, float, str, bool, list of int, ...
    default: str  # as SET= takes it
    meaning: str  # the field's docstring, on one line


def config_keys(base: ExperimentConfig | None = None) -> list[ConfigKey]:
    """One entry per field of ExperimentConfig, in declaration order; defaults from ``base``
    (a preset) or the dataclass."""
    docs = _field_docstrings(ExperimentConfig)
    hints = typing.get_type_hints(ExperimentConfig)
    defaults = base or ExperimentConfig()
    return [ConfigKey(f.name, _type_name(hints[f.name]), value_text(getattr(defaults, f.name)), docs.get(f.name, ""))
            for f in dataclasses.fields(ExperimentConfig)]


def format_keys(base: ExperimentConfig | None = None, width: int = 100) -> str:
    """The keys as text: ``name  (type, default value)`` then the meaning, indented."""
    lines = ["Experiment config keys: set with SET=\"key=value ...\" (make), --set key=value or a JSON/TOML",
             "file of the same keys (--config FILE); lists are comma-separated.", ""]
    for key in config_keys(base):
        default = key.default or "''"
        lines.append(f"{key.name}  ({key.type}, default {default})")
        lines += textwrap.wrap(key.meaning, width, initial_indent="    ", subsequent_indent="    ")
    return "\n".join(lines)


def _field_docstrings(cls: type) -> dict[str, str]:
    """The string literal right under each annotated field of a class body."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for field, after in zip(body, body[1:]):
        if (isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[field.target.id] = " ".join(after.value.value.split())
    return docs


def _type_name(hint) -> str:
    if typing.get_origin(hint) is tuple:
        return f"list of {typing.get_args(hint)[0].__name__}"
    return hint.__name__


def in_config_terms(message: str, dataset: str) -> str:
    """A data-layer message with its library arguments (``root=``, ``load_dataset(...)``)
    said as the config keys an experiment sets, in the command line's form."""
    form = f'SET="dataset={dataset} data_root={"FILE.npz" if dataset == "npz" else "DIR"}"'
    text = (message.replace("load_dataset('npz', path=...)", 'SET="dataset=npz data_root=FILE.npz"')
            .replace("dataset 'npz' needs path= (the .npz file), or root= naming the file",
                     "dataset 'npz' needs data_root, the .npz file")
            .replace("pass root= pointing at", "point data_root at"))
    return text if "SET=" in text else f"{text}; on the command line: {form}"
