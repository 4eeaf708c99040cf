"""The programs in examples/ run against a real platform and print what they promise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.launcher import Platform

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(command: list[str], env: dict[str, str], cwd: Path) -> str:
    """Runs an example from ``cwd`` (not the repo, so nothing is imported from there)."""
    hidden = {"PYTHON", "FAAS_TARGET", "FAAS_REST_URL"}
    done = subprocess.run(
        command,
        env={**{k: v for k, v in os.environ.items() if k not in hidden}, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


def test_raw_stubs_example(shared_platform: Platform, tmp_path: Path) -> None:
    output = run(
        [sys.executable, str(EXAMPLES / "raw_stubs.py"), shared_platform.gateway_target],
        {},
        tmp_path,
    )
    assert "square(7) = 49 [TASK_STATUS_COMPLETED]" in output
    assert "watch: TASK_STATUS_COMPLETED" in output and "slow_add(2, 3) = 5" in output
    assert "batch: [0, 1, 4, 9, 16]" in output
    assert "error: NOT_FOUND TASK_NOT_FOUND" in output


def test_sdk_example(shared_platform: Platform, tmp_path: Path) -> None:
    output = run(
        [sys.executable, str(EXAMPLES / "sdk_client.py")],
        {"FAAS_TARGET": shared_platform.gateway_target},
        tmp_path,
    )
    assert "fib(30) = 832040" in output
    assert "map: [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]" in output
    assert "raised: ZeroDivisionError: division by zero" in output
    assert "result: 2.5" in output and "error: TASK_NOT_FOUND" in output
    assert "executor map: [5, 55, 610]" in output
    assert "executor submit: [0.5, 0.25, 0.125]" in output


def test_curl_example(shared_platform: Platform, tmp_path: Path) -> None:
    output = run(
        ["bash", str(EXAMPLES / "curl.sh")],
        {"FAAS_REST_URL": shared_platform.rest_url},  # its Python: the clone's .venv
        tmp_path,
    )
    assert "result: COMPLETED 81" in output
    assert "batch: COMPLETED 4" in output and "batch: COMPLETED 9" in output
    assert "unknown task: HTTP 404" in output
    assert "workers: 1 (push mode)" in output
