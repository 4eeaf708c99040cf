"""Warnings and errors the services logged during a run, so anomalies are not missed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_SEVERE = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")


def scan(log_dir: Path, keep: int = 8) -> dict[str, Any]:
    """Per log file: how many warning/error lines it has, and the first ``keep`` of them."""
    out: dict[str, Any] = {}
    for path in sorted(log_dir.glob("*.log")):
        lines = [
            line.strip()
            for line in path.read_text(errors="replace").splitlines()
            if _SEVERE.search(line)
        ]
        if lines:
            out[path.name] = {"count": len(lines), "first": lines[:keep]}
    return out
