"""The committed faas.v1 stubs are what `make proto` generates from protos/ now."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_committed_stubs_match_the_protos(tmp_path: Path) -> None:
    plugin = Path(sys.executable).parent / "protoc-gen-mypy"
    if not plugin.exists() or shutil.which("buf", path=str(plugin.parent)) is None:
        pytest.fail("dev tools missing: run `make install`")
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protos/faas/v1").glob("*.proto"))
    env = {**os.environ, "PATH": f"{plugin.parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", "protos",
         f"--python_out={tmp_path}", f"--grpc_python_out={tmp_path}",
         f"--mypy_out=quiet:{tmp_path}", f"--mypy_grpc_out=quiet:{tmp_path}", *protos],
        cwd=ROOT, env=env, check=True,
    )  # fmt: skip
    generated = {
        p.name: p.read_bytes()
        for p in (tmp_path / "faas/v1").iterdir()
        if not p.name.startswith("common_pb2_grpc")
    }
    committed = {
        p.name: p.read_bytes()
        for p in (ROOT / "sdk/faas/v1").iterdir()
        if p.name.endswith((".py", ".pyi")) and p.name != "__init__.py"
    }
    stale = sorted(
        n for n in generated.keys() | committed.keys() if generated.get(n) != committed.get(n)
    )
    assert not stale, f"stubs out of date, run `make proto`: {stale}"
