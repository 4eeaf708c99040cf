"""Functions that go over the per-task limits, for tests/integration/test_task_limits.py.

They live in a module of their own so that they are pickled by reference to this module, which
the workers import from their code path (the working directory).
"""

from __future__ import annotations


def allocate(size: int) -> int:
    """Allocate ``size`` bytes at once (no numpy: a plain bytearray)."""
    return len(bytearray(size))


def pid() -> int:
    import os

    return os.getpid()


def spin(seconds: float) -> float:
    """Use ``seconds`` of CPU time (CPU, not wall time: the machine may be shared)."""
    import time

    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    return time.process_time() - start


def nap(seconds: float) -> str:
    import time

    time.sleep(seconds)
    return "rested"
