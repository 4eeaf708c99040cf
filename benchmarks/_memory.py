"""Resident memory of processes and their descendants, from /proc (Linux only).

VmRSS is the resident set now; VmHWM its peak over the process's life. RSS counts shared pages
(the interpreter, shared libraries) once per process, so a sum over processes overstates what
they use together; PSS (from smaps_rollup) splits shared pages and is reported beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_KIB_PER_MIB = 1024.0


def _status_kib(pid: int, fields: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in fields:
            out[name] = float(value.split()[0])
    return out


def _pss_kib(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return float(line.split()[1])
    return None


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` (children, grandchildren, ...), depth first."""
    out: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            out.extend(kids)
            stack.extend(kids)
    return out


def process_memory(pid: int) -> dict[str, Any]:
    """RSS, peak RSS (HWM) and PSS of one process, in MiB."""
    kib = _status_kib(pid, ("VmRSS", "VmHWM"))
    pss = _pss_kib(pid)
    return {
        "pid": pid,
        "name": _name(pid),
        "rss_mib": kib.get("VmRSS", 0.0) / _KIB_PER_MIB,
        "hwm_mib": kib.get("VmHWM", 0.0) / _KIB_PER_MIB,
        "pss_mib": (pss or 0.0) / _KIB_PER_MIB,
    }


def tree_memory(pid: int) -> dict[str, Any]:
    """A process and its descendants: each one's figures and their sums."""
    members = [process_memory(p) for p in [pid, *descendants(pid)]]
    return {
        "pid": pid,
        "processes": members,
        "rss_mib": sum(m["rss_mib"] for m in members),
        "hwm_mib": sum(m["hwm_mib"] for m in members),
        "pss_mib": sum(m["pss_mib"] for m in members),
    }


def services_memory(pids: dict[str, int]) -> dict[str, dict[str, Any]]:
    """``tree_memory`` of each named service process."""
    return {name: tree_memory(pid) for name, pid in pids.items()}
