"""Facts about the machine and the software under test, recorded with every run."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from services.launcher.redis_server import find_redis_server

from ._processes import REPO_ROOT

_PACKAGES = (
    "grpcio",
    "protobuf",
    "redis",
    "fastapi",
    "uvicorn",
    "httpx",
    "dill",
    "celery",
    "matplotlib",
    "httptools",
    "uvloop",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_mib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=REPO_ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: above 2 on this 2-core machine means contention."""
    return [round(x, 2) for x in os.getloadavg()]


def facts() -> dict[str, Any]:
    """CPU, memory, OS, Python, package versions, redis-server and the git commit."""
    try:
        redis_server = find_redis_server()
        redis_version = _run([redis_server, "--version"])
    except FileNotFoundError:
        redis_version = "none"
    commit = _run(["git", "rev-parse", "--short", "HEAD"])
    dirty = bool(_run(["git", "status", "--porcelain", "--", "services", "sdk"]))
    return {
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_mib": round(_mem_total_mib()),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "packages": {name: _version(name) for name in _PACKAGES},
        "redis_server": redis_version,
        "git_commit": commit + ("-dirty(services/sdk)" if dirty else ""),
        "load_average_start": load_average(),
    }
