"""The interpreter and serializers a process runs, as announced to the dispatcher."""

from __future__ import annotations

import functools
import importlib.metadata
import platform

from faas.v1 import common_pb2

__all__ = ["current_runtime", "python_minor"]


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


@functools.cache
def _current() -> bytes:
    runtime = common_pb2.Runtime(
        python_version=platform.python_version(),
        dill_version=_version("dill"),
        cloudpickle_version=_version("cloudpickle"),
    )
    return runtime.SerializeToString()


def current_runtime() -> common_pb2.Runtime:
    """This interpreter's version and the dill (and cloudpickle, if installed) versions."""
    return common_pb2.Runtime.FromString(_current())


def python_minor(version: str) -> str:
    """``"3.11.7"`` -> ``"3.11"``: what a task and a worker must share; ``""`` stays ``""``."""
    parts = version.strip().split(".")
    return ".".join(parts[:2])
