"""Reading what the user hands the CLI: ``FILE.py:FUNC`` and JSON arguments."""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "UsageError",
    "load_function",
    "parse_args",
    "parse_kwargs",
    "parse_labels",
    "parse_resources",
    "read_calls",
]

Call = tuple[list[Any], dict[str, Any]]


class UsageError(Exception):
    """A mistake in the command line or its inputs (exit code 2)."""


def load_function(spec: str) -> Callable[..., Any]:
    """The function ``FUNC`` of ``FILE.py:FUNC`` (``FUNC`` may be dotted, e.g. ``Cls.method``).

    The file runs as a module under a private name that is then forgotten, with its directory
    first on ``sys.path`` meanwhile, as ``python FILE.py`` would have it. Registering then
    pickles the function by value, with what it uses from the file and from the user's other
    modules the file imports (its siblings, say): workers need neither. Installed packages the
    file imports (the standard library, numpy...) must be importable on the workers.
    """
    path_text, sep, name = spec.rpartition(":")
    if not sep or not path_text or not name:
        raise UsageError(f"expected FILE.py:FUNC, got {spec!r}")
    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    module_name = f"_faas_file_{uuid.uuid4().hex}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise UsageError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module  # while it runs: dataclasses and the like look it up
    folder = str(path.resolve().parent)
    on_path = folder in sys.path
    if not on_path:
        sys.path.insert(0, folder)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        raise UsageError(f"{path}: {type(exc).__name__}: {exc}") from None
    finally:
        sys.modules.pop(module_name, None)
        if not on_path and folder in sys.path:
            sys.path.remove(folder)
    try:
        fn = functools.reduce(getattr, name.split("."), module)
    except AttributeError:
        raise UsageError(f"{path} has no {name!r}") from None
    if not callable(fn):
        raise UsageError(f"{path}: {name} is a {type(fn).__name__}, not a function")
    return fn


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc}") from None


def parse_args(text: str | None) -> list[Any]:
    """``--args``: a JSON array of positional arguments."""
    if text is None:
        return []
    value = _json(text, "--args")
    if not isinstance(value, list):
        raise UsageError(f"--args must be a JSON array, e.g. '[1, 2]', got {text!r}")
    return value


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """``--kwargs``: a JSON object of keyword arguments."""
    if text is None:
        return {}
    value = _json(text, "--kwargs")
    if not isinstance(value, dict):
        raise UsageError(f"--kwargs must be a JSON object, e.g. '{{\"a\": 1}}', got {text!r}")
    return value


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    """Repeated ``FLAG k=v[,k=v...]`` values as one dict, as the workers read theirs."""
    out: dict[str, str] = {}
    for value in values or ():
        for pair in value.split(","):
            if not pair.strip():
                continue
            key, sep, text = pair.partition("=")
            if not sep or not key.strip():
                raise UsageError(f"{flag} expects KEY=VALUE[,KEY=VALUE...], got {pair.strip()!r}")
            out[key.strip()] = text.strip()
    return out


def parse_labels(values: list[str] | None) -> dict[str, str]:
    """``--label gpu=h200 --label zone=a`` (or ``--label gpu=h200,zone=a``)."""
    return _pairs(values, "--label")


def parse_resources(values: list[str] | None) -> dict[str, float]:
    """``--resource gpu=1 --resource mem=2.5``: finite amounts >= 0."""
    out: dict[str, float] = {}
    for name, text in _pairs(values, "--resource").items():
        try:
            amount = float(text)
        except ValueError:
            raise UsageError(f"--resource {name}: not a number: {text!r}") from None
        if not math.isfinite(amount) or amount < 0:
            raise UsageError(f"--resource {name}: must be a finite number >= 0, got {text!r}")
        out[name] = amount
    return out


def read_calls(stream: TextIO, name: str) -> Iterator[Call]:
    """One call per non-blank JSON line: ``[1, 2]`` (positional arguments) or
    ``{"args": [1], "kwargs": {"b": 2}}``."""
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        value = _json(line, f"{name} line {number}")
        if isinstance(value, list):
            yield value, {}
            continue
        if isinstance(value, dict) and set(value) <= {"args", "kwargs"}:
            args, kwargs = value.get("args", []), value.get("kwargs", {})
            if isinstance(args, list) and isinstance(kwargs, dict):
                yield args, kwargs
                continue
        raise UsageError(
            f'{name} line {number}: expected [args...] or {{"args": [...], "kwargs": {{...}}}}'
        )
