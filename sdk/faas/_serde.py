"""The wire format of payloads: pickles of functions, ``(args, kwargs)`` and results.

A function is pickled with cloudpickle, *by value* when it comes from the user's own code: its
module, and every other module of the user's that is loaded, are registered with
``cloudpickle.register_pickle_by_value`` for the call, so the pickle carries the function's code
with the helpers, classes and constants it uses, and workers need not import those modules.
Functions of installed packages (the standard library, anything under site-packages, this SDK)
stay references, imported on the worker. Workers read every payload with ``dill.loads``, which
loads cloudpickle's pickles too. Should cloudpickle fail on an object, dill
(``recurse=True``) is tried, as the SDK always did.

Unpickling a result runs code from the pickle: only read results of a gateway you trust.
"""

from __future__ import annotations

import functools
import os
import pickle
import platform
import site
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import cloudpickle  # type: ignore[import-untyped]
import dill

from faas.v1 import common_pb2

from ._models import TaskInfo, TaskStatus
from .errors import FaaSError, TaskFailed

__all__ = [
    "PickledFunction",
    "dumps_call",
    "dumps_function",
    "is_user_module",
    "outcome",
    "pickle_function",
    "runtime",
]

# cloudpickle's by-value registry is one set for the whole process: changed under this lock only.
_REGISTRY_LOCK = threading.Lock()
# Module name and file -> whether it is the user's own code (the answer never changes).
_USER_MODULE_CACHE: dict[tuple[str, str], bool] = {}
_INSTALLED_PARTS = frozenset({"site-packages", "dist-packages"})


class PickledFunction(NamedTuple):
    """A pickled function and the library that pickled it (``"cloudpickle"`` or ``"dill"``)."""

    payload: bytes
    serializer: str


def pickle_function(fn: Callable[..., Any]) -> PickledFunction:
    """``fn`` pickled so that workers can run it: the user's own code by value (see above)."""
    if not callable(fn):
        raise TypeError(f"expected a callable, got {type(fn).__name__}")
    try:
        return PickledFunction(_cloudpickle_by_value(fn), "cloudpickle")
    except Exception as exc:
        first = exc
    try:
        data: bytes = dill.dumps(fn, recurse=True)
    except Exception:
        raise first from None
    return PickledFunction(data, "dill")


def dumps_function(fn: Callable[..., Any]) -> bytes:
    """The payload of ``pickle_function(fn)``."""
    return pickle_function(fn).payload


def runtime(serializer: str) -> common_pb2.Runtime:
    """What a function was serialized with, as ``RegisterFunctionRequest.runtime`` says it."""
    return common_pb2.Runtime(
        python_version=platform.python_version(),
        dill_version=str(dill.__version__),
        serializer=serializer,
        cloudpickle_version=str(cloudpickle.__version__) if serializer == "cloudpickle" else "",
    )


def _cloudpickle_by_value(fn: Callable[..., Any]) -> bytes:
    """``cloudpickle.dumps(fn)`` with every loaded user module registered by value meanwhile.

    Modules the caller registered already stay registered afterwards.
    """
    with _REGISTRY_LOCK:
        registered = cloudpickle.list_registry_pickle_by_value()
        added = [module for module in _user_modules() if module.__name__ not in registered]
        for module in added:
            cloudpickle.register_pickle_by_value(module)
        try:
            data: bytes = cloudpickle.dumps(fn)
        finally:
            for module in added:
                cloudpickle.unregister_pickle_by_value(module)
    return data


def _user_modules() -> Iterator[ModuleType]:
    """The loaded modules of the user's own code (each under its own name, not an alias)."""
    for name, module in list(sys.modules.items()):
        if (
            isinstance(module, ModuleType)
            and getattr(module, "__name__", None) == name
            and is_user_module(module)
        ):
            yield module


def is_user_module(module: ModuleType) -> bool:
    """Whether ``module`` is the user's own code, to be shipped by value.

    It is when it comes from a ``.py`` file outside the standard library, outside every
    site-packages or dist-packages directory and outside this SDK. ``__main__`` is not counted:
    cloudpickle always pickles its functions by value.
    """
    name = module.__name__
    path = getattr(module, "__file__", None)
    if name == "__main__" or not isinstance(path, str) or not path.endswith(".py"):
        return False
    key = (name, path)
    known = _USER_MODULE_CACHE.get(key)
    if known is None:
        known = _USER_MODULE_CACHE[key] = _is_user_source(name, path)
    return known


def _is_user_source(name: str, path: str) -> bool:
    if name.partition(".")[0] in sys.stdlib_module_names:
        return False
    real = Path(os.path.realpath(path))
    if _INSTALLED_PARTS.intersection(real.parts):
        return False
    return not any(real.is_relative_to(root) for root in _installed_roots())


@functools.cache
def _installed_roots() -> tuple[Path, ...]:
    """The directories of installed code: the standard library, site-packages, this SDK."""
    found = {Path(__file__).resolve().parent}
    for scheme_vars in ({}, {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}):
        paths = sysconfig.get_paths(vars=scheme_vars)
        found.update(Path(paths[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib"))
    found.update(Path(p) for p in getattr(site, "getsitepackages", list)())
    found.add(Path(site.getusersitepackages()))
    return tuple(Path(os.path.realpath(p)) for p in found)


def dumps_call(args: Sequence[Any], kwargs: Mapping[str, Any] | None = None) -> bytes:
    """The arguments payload: ``dill.dumps((tuple(args), dict(kwargs)))``.

    Plain data (numbers, strings, bytes, None and small tuples, lists and dicts of them) is
    pickled by the standard library's C pickler, whose bytes are dill's for such values, at a
    tenth of the cost; anything else goes through dill.
    """
    call = (tuple(args), dict(kwargs or {}))
    if _plain(call, _PLAIN_DEPTH, [_PLAIN_ITEMS]):
        return pickle.dumps(call, protocol=dill.settings["protocol"])
    data: bytes = dill.dumps(call)
    return data


_SCALARS = frozenset({int, float, str, bytes, bool, type(None)})
_PLAIN_DEPTH = 4
_PLAIN_ITEMS = 256  # larger arguments go through dill: the check would cost more than it saves


def _plain(value: object, depth: int, budget: list[int]) -> bool:
    """Whether ``value`` is plain data, within ``depth`` levels and ``budget[0]`` items."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if depth == 0 or kind not in (tuple, list, dict):
        return False
    items: Any = value
    budget[0] -= len(items)
    if budget[0] < 0:
        return False
    if kind is dict:
        return all(type(k) in _SCALARS and _plain(v, depth - 1, budget) for k, v in items.items())
    return all(_plain(item, depth - 1, budget) for item in items)


def outcome(info: TaskInfo) -> Any:
    """The value of an ended task, or raise what it failed with.

    A COMPLETED task gives its return value. A FAILED task whose function raised re-raises
    that exception (the remote traceback added as a note); any other failure raises
    ``TaskFailed`` whose ``__cause__`` is the recorded exception, when it can be read.
    """
    if info.status == TaskStatus.COMPLETED:
        try:
            return dill.loads(info.payload)
        except Exception as exc:
            raise FaaSError(
                f"the result of task {info.task_id} could not be deserialized: {exc}",
                reason="RESULT_NOT_DESERIALIZABLE",
            ) from exc
    if info.status != TaskStatus.FAILED:
        raise FaaSError(f"task {info.task_id} has not ended ({info.status})")
    recorded, readable = _recorded_exception(info.payload)
    if info.cause == "RAISED" and readable and recorded is not None:
        if info.traceback:
            recorded.add_note(f"\nRemote traceback (task {info.task_id}):\n{info.traceback}")
        raise recorded
    raise TaskFailed(info.task_id, info.cause, info.message, info.traceback) from recorded


def _recorded_exception(payload: bytes) -> tuple[BaseException | None, bool]:
    """The exception a FAILED task recorded and True; or the error of reading it and False."""
    if not payload:
        return None, False
    try:
        value = dill.loads(payload)
    except Exception as exc:
        return exc, False
    return (value, True) if isinstance(value, BaseException) else (None, False)
