"""Process hardening the platform's own processes apply to themselves at start.

A process marked non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``) has its ``/proc/<pid>/`` files
owned by root and refuses ``ptrace``: a process of the same user (user code on a worker that
is not root, say) cannot read its environment, memory or open descriptors, nor attach a
debugger. Linux only; elsewhere a no-op.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["is_dumpable", "make_non_dumpable"]

_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4


def make_non_dumpable() -> bool:
    """Mark this process non-dumpable; True when done (False off Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, "prctl(PR_SET_DUMPABLE)")
    return True


def is_dumpable() -> bool:
    """Whether this process is dumpable (always True off Linux)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(ctypes.CDLL(None, use_errno=True).prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0))
