"""The code path setting of workers and of the dispatcher's local pool: flag, variable, default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.common.settings import load
from services.dispatcher.settings import DispatcherSettings
from services.worker.settings import WorkerSettings


@pytest.mark.parametrize("cls", [WorkerSettings, DispatcherSettings])
def test_the_default_is_the_working_directory_at_start(
    cls: type[WorkerSettings] | type[DispatcherSettings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = cls()
    assert settings.code_path == str(tmp_path)
    assert settings.code_paths == (str(tmp_path),)


@pytest.mark.parametrize("cls", [WorkerSettings, DispatcherSettings])
def test_the_variable_and_the_flag(
    cls: type[WorkerSettings] | type[DispatcherSettings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    environ = {"FAAS_CODE_PATH": os.pathsep.join(["/srv/app", "lib", "", "/srv/app"])}
    settings = load(cls, [], environ, prog="test", description=None)
    assert settings.code_paths == ("/srv/app", str(tmp_path / "lib"))  # absolute, each once
    assert settings.code_path == os.pathsep.join(settings.code_paths)
    flagged = load(cls, ["--code-path", "/opt/code"], environ, prog="test", description=None)
    assert flagged.code_paths == ("/opt/code",)
