"""Starting pool children with an environment of their own: the allowlist, nothing else.

A process that runs user code must not inherit the platform's secrets (a Redis URL, keys,
``FAAS_*`` settings). ``/proc/<pid>/environ`` shows the environment a process was exec'd with,
so clearing ``os.environ`` inside the child is too late: the environment must be clean at exec.
multiprocessing's spawn start method execs the child with the parent's environment and has no
way to pass another, and swapping ``os.environ`` in the parent around the start would change
it under every other thread of the process (``setenv`` racing ``getenv`` is undefined
behaviour in C). So ``ScrubbedProcess`` is a spawn process whose launch is the standard
library's, except that the exec is given the child's own environment.

The child gets ``PATH``, ``HOME``, ``LANG``, ``LC_*``, ``TZ``, ``TMPDIR`` and
``PYTHONHASHSEED`` when the parent has them, and the variables the operator names
(``--pass-env``). Not ``PYTHONPATH``: spawn hands the child the parent's ``sys.path`` anyway,
and users' modules come from the code path. When the child runs as another user, ``HOME`` is
that user's home.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from multiprocessing import popen_spawn_posix, reduction, resource_tracker, spawn, util
from multiprocessing.context import SpawnProcess, set_spawning_popen
from typing import Any

from ._protocol import RunAs

__all__ = [
    "ALLOWED_VARIABLES",
    "RunAsError",
    "ScrubbedProcess",
    "child_environment",
    "resolve_run_as",
    "scrub_environ",
]

ALLOWED_VARIABLES = ("PATH", "HOME", "LANG", "TZ", "TMPDIR", "PYTHONHASHSEED")
_ALLOWED_PREFIXES = ("LC_",)


def child_environment(
    environ: Mapping[str, str], passed: Iterable[str] = (), home: str | None = None
) -> dict[str, str]:
    """The environment of a process that runs user code: the allowlist and ``passed``, taken
    from ``environ`` where set there; ``home``, when given, replaces ``HOME``."""
    names = set(ALLOWED_VARIABLES) | set(passed)
    env = {
        name: value
        for name, value in environ.items()
        if name in names or name.startswith(_ALLOWED_PREFIXES)
    }
    if home is not None:
        env["HOME"] = home
    return env


def scrub_environ(env: Mapping[str, str]) -> None:
    """Make ``os.environ`` exactly ``env``: for fork and forkserver children, which are not
    exec'd (their ``/proc/self/environ`` still shows what their parent was started with)."""
    for name in [name for name in os.environ if name not in env]:
        del os.environ[name]
    os.environ.update(env)


class ScrubbedProcess(SpawnProcess):
    """A spawn-started process exec'd with ``env`` as its whole environment."""

    def __init__(self, *, env: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._exec_env = dict(env)

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _ScrubbedPopen(process_obj)


class _ScrubbedPopen(popen_spawn_posix.Popen):
    """``popen_spawn_posix.Popen`` with the exec given the process's ``_exec_env``."""

    _fds: list[int]

    def _launch(self, process_obj: ScrubbedProcess) -> None:
        # The standard library's _launch (3.11 to 3.13), but for the environment of the exec.
        tracker_fd = resource_tracker.getfd()
        assert tracker_fd is not None  # getfd() starts the tracker when it is not running
        self._fds.append(tracker_fd)
        prep_data = spawn.get_preparation_data(process_obj._name)  # type: ignore[attr-defined]
        fp = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, fp)
            reduction.dump(process_obj, fp)
        finally:
            set_spawning_popen(None)
        parent_r = child_w = child_r = parent_w = None
        try:
            parent_r, child_w = os.pipe()
            child_r, parent_w = os.pipe()
            cmd = spawn.get_command_line(tracker_fd=tracker_fd, pipe_handle=child_r)
            self._fds.extend([child_r, child_w])
            self.pid = _spawnv_passfds(
                spawn.get_executable(), cmd, self._fds, process_obj._exec_env
            )
            self.sentinel = parent_r
            with open(parent_w, "wb", closefd=False) as f:
                f.write(fp.getbuffer())
        finally:
            fds_to_close = [fd for fd in (parent_r, parent_w) if fd is not None]
            self.finalizer = util.Finalize(self, util.close_fds, fds_to_close)  # type: ignore[attr-defined]
            for fd in (child_r, child_w):
                if fd is not None:
                    os.close(fd)


def _spawnv_passfds(
    path: str | bytes, args: list[str], passfds: Iterable[int], env: Mapping[str, str]
) -> int:
    # multiprocessing.util.spawnv_passfds with an environment: fork_exec's sixth argument.
    import _posixsubprocess
    import subprocess

    fds = tuple(sorted(map(int, passfds)))
    env_list = [os.fsencode(name) + b"=" + os.fsencode(value) for name, value in env.items()]
    errpipe_read, errpipe_write = os.pipe()
    try:
        fork_exec: Any = _posixsubprocess.fork_exec  # typeshed's signature is not 3.11's
        pid: int = fork_exec(
            args, [os.fsencode(path)], True, fds, None, env_list,
            -1, -1, -1, -1, -1, -1, errpipe_read, errpipe_write,
            False, False, -1, None, None, None, -1, None,
            subprocess._USE_VFORK,
        )  # fmt: skip
        return pid
    finally:
        os.close(errpipe_read)
        os.close(errpipe_write)


class RunAsError(ValueError):
    """``--run-as`` names no user, or a change of user this process may not make."""


def checked_run_as(user: str) -> str:
    """``user`` unchanged when :func:`resolve_run_as` accepts it (a settings validator)."""
    resolve_run_as(user)  # a user that does not exist, or a change we may not make, fails here
    return user


def resolve_run_as(user: str) -> RunAs | None:
    """The user pool children become: ``user`` (a name or a uid); ``""``: ``nobody`` when this
    process runs as root, else none. ``None`` when the children stay who this process is.

    Only root may hand its children to another user; root naming root keeps them root.
    """
    import pwd

    euid = os.geteuid()
    if not user:
        if euid != 0:
            return None
        user = "nobody"
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise RunAsError(f"no user {user!r} on this host") from None
    if entry.pw_uid == euid:
        return None
    if euid != 0:
        raise RunAsError(f"only a worker running as root can run tasks as {user!r}")
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)
