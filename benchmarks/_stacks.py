"""Summaries of py-spy's raw (collapsed) stacks: top functions by self and total time, by package.

A raw file has one line per distinct stack, ``frame;frame;...;frame COUNT``, root first, where a
frame reads ``function (path:line)``. py-spy leaves out samples it sees idle, but not all of
them: a thread blocked in C (gRPC's poller thread in ``epoll_wait``, the event loop's own
``select``, a pool child waiting on its pipe) still shows up, so those stacks are counted as
idle here and percentages are of the remaining, busy samples.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")


def _parse_frame(frame: str) -> tuple[str, str]:
    """(function, path) of one frame."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip(), ""
    return match["func"], match["path"]


def package(path: str) -> str:
    """A short name for where a frame's code lives: a package, a stdlib module or ours.

    py-spy already shortens paths to what follows ``site-packages/`` or the stdlib folder
    (``redis/asyncio/client.py``, ``asyncio/events.py``, ``threading.py``).
    """
    if not path:
        return "native"
    path = _short(path)
    if path.startswith("<"):
        return path
    parts = path.split("/")
    if parts[0] in ("services", "benchmarks") and len(parts) > 1:
        return f"{parts[0]}.{parts[1].removesuffix('.py')}"
    return parts[0].removesuffix(".py")


# Frames every busy stack passes through: left out of the "total" ranking.
_BOILERPLATE = (
    "<frozen runpy>",
    "asyncio/runners.py",
    "threading.py",
    "__main__.py",
)
_LOOP_FRAMES = {
    "BaseEventLoop.run_forever",
    "BaseEventLoop.run_until_complete",
    "BaseEventLoop._run_once",
}


def _boilerplate(func: str, path: str) -> bool:
    if path.endswith("_counting.py"):  # the batch-counting wrappers, not the services' code
        return True
    return path.endswith(_BOILERPLATE) or func in _LOOP_FRAMES or path == "<frozen runpy>"


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


_IDLE_LEAVES = {
    "epoll_wait",
    "epoll_pwait",
    "poll",
    "select",
    "EpollSelector.select",
    "Thread.run",
    "Thread.wait",
    "pthread_cond_wait",
    "pthread_cond_timedwait",
    "__futex_abstimed_wait_common",
    "sem_wait",
    "Condition.wait",
}


def _idle(frames: list[tuple[str, str]]) -> bool:
    """A stack of a thread that waits rather than works."""
    leaf = frames[-1][0]
    if leaf in _IDLE_LEAVES:
        return True
    names = {f for f, _ in frames}
    # a pool child blocked reading its next job from the pipe
    return (
        "child_main" in names
        and "Connection._recv_bytes" in names
        and leaf in ("read", "Connection._recv_bytes", "Connection._recv")
    )


def summarize(raw_path: Path, top: int = 15) -> dict[str, Any]:
    """Top self and inclusive functions and self time by package, as shares of all samples."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    samples = idle = 0
    if not raw_path.exists():
        return {"samples": 0}
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_parse_frame(f) for f in stack.split(";")]
        frames = [f for f in frames if not f[0].startswith(("process ", "thread "))]
        if not frames or _idle(frames):
            idle += count
            continue
        samples += count
        func, path = frames[-1]
        self_counts[f"{func} ({_short(path)})"] += count
        packages[package(path)] += count
        for name in {f"{f} ({_short(p)})" for f, p in frames if not _boilerplate(f, p)}:
            total_counts[name] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return (
            [(name, 100.0 * n / samples) for name, n in counter.most_common(top)] if samples else []
        )

    return {
        "samples": samples,
        "idle_samples": idle,
        "self": share(self_counts),
        "total": share(total_counts),
        "packages": share(packages),
    }


def markdown(name: str, summary: dict[str, Any]) -> str:
    """One process's summary as Markdown."""
    lines = [
        f"### {name} ({summary.get('samples', 0)} busy samples, "
        f"{summary.get('idle_samples', 0)} idle left out)",
        "",
    ]
    if not summary.get("samples"):
        return "\n".join([*lines, "no samples", ""])
    lines += ["Self time by package:", ""]
    lines += [f"- {pct:5.1f}% {pkg}" for pkg, pct in summary["packages"]]
    lines += ["", "| self % | function |", "|---|---|"]
    lines += [f"| {pct:.1f} | `{fn}` |" for fn, pct in summary["self"]]
    lines += ["", "| total % | function |", "|---|---|"]
    lines += [f"| {pct:.1f} | `{fn}` |" for fn, pct in summary["total"]]
    return "\n".join([*lines, ""])
