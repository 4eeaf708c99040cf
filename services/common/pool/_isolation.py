"""Child-side set-up: a session of its own, another user, death with the parent, and output.

A pool child leads its own session, so the parent can kill it together with every process its
user code starts (``os.killpg``). It asks the kernel for SIGKILL when its parent dies
(``PR_SET_PDEATHSIG``), and so do the processes its user code forks, so nothing runs user code
after the worker that owns it is gone. Its stdout and stderr go to a pipe that the parent reads,
never to the platform's log. A child of a root worker becomes an unprivileged user
(``become``) before it loads anything of the user's, so user code cannot signal the worker,
read its files or ``/proc/<pid>/environ``. Every child is non-dumpable, so another process of
the same user (another child, running someone else's task) cannot read its memory. Linux only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = [
    "Folders",
    "OutputStreams",
    "become",
    "die_with_parent",
    "lead_own_session",
    "redirect_output",
    "unreadable_folders",
]

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)
# The pid of the process that forks, read by the new process just after the fork; 0 when the
# fork comes from a thread other than the main one, which may end long before the new process.
_forking_pid = 0


def lead_own_session() -> None:
    """Start a new session (and process group) led by this process."""
    if os.getsid(0) != os.getpid():
        os.setsid()


def become(uid: int, gid: int) -> None:
    """Drop every supplementary group and become ``uid``:``gid`` for good (saved ids too).

    The kernel clears the parent-death signal on the change, so ``die_with_parent`` comes after.
    """
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        raise OSError(f"could not become uid {uid}, gid {gid}")


class Folders:
    """Folders opened before a change of user, reachable after it through their descriptors.

    A folder the new user may read but not reach (its Python installation under root's home,
    say: ``/root`` is root's alone) is used through ``/proc/self/fd/N``, which leads to the
    folder without entering those above it; nothing above it becomes reachable.
    """

    def __init__(self, folders: list[str]) -> None:
        self._fds: dict[str, int] = {}
        for folder in dict.fromkeys(folders):
            with contextlib.suppress(OSError):
                self._fds[folder] = os.open(folder, os.O_PATH | os.O_DIRECTORY)

    def __contains__(self, folder: object) -> bool:
        """Whether ``folder`` existed (and was opened) when these folders were."""
        return folder in self._fds

    def usable(self, folder: str) -> str:
        """``folder`` if this process can reach and read it, else its descriptor's path if
        that can be read, else ``folder``."""
        if os.access(folder, os.R_OK | os.X_OK) or folder not in self._fds:
            return folder
        through = f"/proc/self/fd/{self._fds[folder]}"
        return through if os.access(through, os.R_OK | os.X_OK) else folder

    def settle(self) -> dict[str, str]:
        """Each folder -> the path to use for it now; closes the descriptors left unused."""
        paths = {folder: self.usable(folder) for folder in self._fds}
        for folder, fd in self._fds.items():
            if paths[folder] == folder:
                os.close(fd)
        return paths


def unreadable_folders(folders: Sequence[str]) -> list[str]:
    """The folders of ``folders`` that exist but this process cannot list or enter."""
    out = []
    for folder in folders:
        try:
            os.stat(folder)
        except FileNotFoundError:
            continue
        except OSError:
            out.append(folder)  # a folder above it cannot be entered
            continue
        if not os.access(folder, os.R_OK | os.X_OK):
            out.append(folder)
    return out


def die_with_parent(parent_pid: int | None) -> None:
    """Have the kernel SIGKILL this process, and processes forked from it, when the parent dies.

    The signal follows the death of the parent *thread* that started this process, so pool
    children must be started from a thread that lives as long as the pool (the loop's thread).
    For the same reason, only processes ``os.fork``-ed from the main thread get it (programs
    started with ``subprocess`` do not: they die with the group when the pool retires it).
    """
    _set_death_signal(parent_pid)
    os.register_at_fork(before=_remember_forking_pid, after_in_child=_on_fork)


def _set_death_signal(parent_pid: int | None) -> None:
    if _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # The parent died before the signal was armed: it will never come.


def _remember_forking_pid() -> None:
    global _forking_pid
    _forking_pid = os.getpid() if threading.current_thread() is threading.main_thread() else 0


def _on_fork() -> None:
    # On failure the process still dies with the pool child's group when the pool retires it.
    if _forking_pid:
        with contextlib.suppress(OSError):
            _set_death_signal(_forking_pid)


class OutputStreams:
    """The child's ``sys.stdout`` and ``sys.stderr``, put back and flushed after every job."""

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self._stdout = stdout
        self._stderr = stderr

    def flush(self) -> None:
        """Push what user code printed into the pipe, and undo any replacement of the streams."""
        for stream in (sys.stdout, sys.stderr, self._stdout, self._stderr):
            with contextlib.suppress(BaseException):  # User code may have closed or broken it.
                stream.flush()
        _libc.fflush(None)  # C libraries' stdio buffers too.
        sys.stdout, sys.stderr = self._stdout, self._stderr


def redirect_output(output: Connection[Any, Any]) -> OutputStreams:
    """Point file descriptors 1 and 2 at ``output`` (then closed here), with new, line-buffered
    ``sys.stdout`` and ``sys.stderr`` over them (the old ones took the descriptors for files)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    fd = output.fileno()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    output.close()
    stdout, stderr = _line_buffered(1), _line_buffered(2)
    sys.stdout, sys.stderr = stdout, stderr
    return OutputStreams(stdout, stderr)


def _line_buffered(fd: int) -> TextIO:
    return open(fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)
