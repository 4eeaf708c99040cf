"""A hostile function that hunts for the platform's secrets from inside a task.

It lives in a module of its own so that it is pickled by reference to this module, which the
workers import from their code path (the working directory).
"""

from __future__ import annotations


def hunt(agent_pid: int) -> dict[str, object]:
    """Everything a task can find: its environment, every /proc/PID/environ it can read, whether
    it can stop its parent and the worker agent, and its uid."""
    import os
    import signal

    found: dict[str, object] = {"environ": dict(os.environ), "uid": os.getuid()}
    found["pid"] = os.getpid()
    try:  # a task process that became another user is not dumpable: only root reads this
        with open("/proc/self/environ", "rb") as file:
            found["self_environ"] = file.read().decode("utf-8", "replace")
    except PermissionError:
        found["self_environ"] = None
    readable: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as file:
                readable[int(entry)] = file.read().decode("utf-8", "replace")
        except OSError:
            continue
    found["others"] = readable
    found["parent"] = os.getppid()
    kills: dict[int, str] = {}
    for pid in {os.getppid(), agent_pid}:
        try:
            os.kill(pid, signal.SIGSTOP)
        except OSError as exc:
            kills[pid] = type(exc).__name__
        else:
            os.kill(pid, signal.SIGCONT)  # do not leave the platform stopped
            kills[pid] = "sent"
    found["kills"] = kills
    return found
