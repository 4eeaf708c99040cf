"""The benchmark's tasks, as dill payloads for the platform and as plain functions for the floors.

The platform's payloads are built from source in a namespace named ``__main__`` so that dill
pickles them by value: a worker loads them without importing this package.
"""

from __future__ import annotations

import codecs
import time
from typing import Any

import dill

_SOURCE = """
def noop(*args, **kwargs):
    return None


def sleep(seconds):
    import time

    time.sleep(seconds)
    return seconds
"""


def _by_value() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    exec(compile(_SOURCE, "<benchmark tasks>", "exec"), namespace)
    return namespace


_FUNCTIONS = _by_value()

NOOP_FUNCTION: bytes = dill.dumps(_FUNCTIONS["noop"])
SLEEP_FUNCTION: bytes = dill.dumps(_FUNCTIONS["sleep"])
NOOP_ARGS: bytes = dill.dumps(((), {}))


def sleep_args(seconds: float) -> bytes:
    return dill.dumps(((seconds,), {}))


def rest_encode(payload: bytes) -> str:
    """The REST contract's encoding of a dill payload."""
    return codecs.encode(payload, "base64").decode()


# Plain functions for multiprocessing.Pool (pickled by reference; importable in the children).


def noop(*_args: Any) -> None:
    return None


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
