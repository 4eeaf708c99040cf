"""Unit tests of the settings models: one model per service gives its flags, variables and docs.

A bad value, from a flag or the environment, is one line naming the setting and exit code 2;
the entry points are also run as real processes (they stop before binding anything).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from services.common import settings as common
from services.common.settings import ServiceSettings, SettingsError, load
from services.dispatcher.settings import DispatcherSettings
from services.gateway.rest.settings import RestSettings
from services.gateway.settings import GatewaySettings
from services.worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
ALL = (DispatcherSettings, GatewaySettings, RestSettings, WorkerSettings)


def _load(cls: type[ServiceSettings], argv: list[str], environ: Mapping[str, str]) -> Any:
    return load(cls, argv, environ, prog="faas-test", description=None)


def _run(module: str, args: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Runs a service's real entry point; with a bad setting it must stop at once."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAAS_")}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- booleans ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize(
    ("text", "value"),
    [("1", True), ("0", False), ("true", True), ("FALSE", False), ("yes", True), ("No", False)],
)
def test_log_json_accepts_the_usual_booleans(
    cls: type[ServiceSettings], text: str, value: bool
) -> None:
    assert cls.from_env({"FAAS_LOG_JSON": text}).log_json is value  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("text", ["maybe", "2", "on", "y"])
def test_a_bad_boolean_names_the_variable(cls: type[ServiceSettings], text: str) -> None:
    with pytest.raises(SettingsError) as caught:
        cls.from_env({"FAAS_LOG_JSON": text})
    message = str(caught.value)
    assert "FAAS_LOG_JSON" in message and repr(text) in message and "\n" not in message


def test_a_boolean_flag_overrides_the_environment() -> None:
    env = {"FAAS_RETRY_PROCESS_DEATH": "yes", "FAAS_LOG_JSON": "no"}
    settings = _load(DispatcherSettings, ["--no-retry-process-death", "--log-json"], env)
    assert settings.retry_process_death is False and settings.log_json is True
    assert _load(DispatcherSettings, ["--retry-process-death"], {}).retry_process_death is True


# --- ranges and sets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "environ", "named"),
    [
        (RestSettings, {"FAAS_REST_PORT": "abc"}, "FAAS_REST_PORT"),
        (RestSettings, {"FAAS_REST_PORT": "65536"}, "FAAS_REST_PORT"),
        (RestSettings, {"FAAS_REST_PORT": "-1"}, "FAAS_REST_PORT"),
        (DispatcherSettings, {"FAAS_DISPATCHER_MODE": "fast"}, "FAAS_DISPATCHER_MODE"),
        (DispatcherSettings, {"FAAS_DISPATCHER_ADDRESS": "127.0.0.1:x"}, "FAAS_DISPATCHER_ADDRESS"),
        (DispatcherSettings, {"FAAS_MAX_ATTEMPTS": "0"}, "FAAS_MAX_ATTEMPTS"),
        (DispatcherSettings, {"FAAS_HEARTBEAT_SECONDS": "nan"}, "FAAS_HEARTBEAT_SECONDS"),
        (DispatcherSettings, {"FAAS_PREFETCH": "-1"}, "FAAS_PREFETCH"),
        (GatewaySettings, {"FAAS_GATEWAY_ADDRESS": "127.0.0.1:99999"}, "FAAS_GATEWAY_ADDRESS"),
        (GatewaySettings, {"FAAS_MAX_PAYLOAD_BYTES": "lots"}, "FAAS_MAX_PAYLOAD_BYTES"),
        (WorkerSettings, {"FAAS_WORKER_PROCESSES": "0"}, "FAAS_WORKER_PROCESSES"),
        (WorkerSettings, {"FAAS_WORKER_MODE": "local"}, "FAAS_WORKER_MODE"),
        (WorkerSettings, {"FAAS_LOG_LEVEL": "loud"}, "FAAS_LOG_LEVEL"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    cls: type[ServiceSettings], environ: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        cls.from_env(environ)
    message = str(caught.value)
    assert message.startswith(named) and "\n" not in message


def test_unset_or_empty_variables_keep_the_defaults() -> None:
    assert RestSettings.from_env({}) == RestSettings()
    assert RestSettings.from_env({"FAAS_REST_PORT": "", "FAAS_LOG_JSON": ""}) == RestSettings()
    assert DispatcherSettings.from_env({"FAAS_DISPATCHER_MODE": ""}).mode == "push"


def test_keywords_read_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAAS_LOG_JSON", "1")
    monkeypatch.setenv("FAAS_MAX_ATTEMPTS", "7")
    settings = DispatcherSettings(mode="local", heartbeat_seconds=0.5)
    assert (settings.log_json, settings.max_attempts, settings.mode) == (False, 3, "local")
    assert settings.dead_after_seconds == pytest.approx(1.5)


def test_settings_are_frozen_and_replace_validates() -> None:
    settings = GatewaySettings()
    with pytest.raises(ValueError, match="frozen"):
        settings.max_wait_seconds = 1.0
    assert settings.replace(max_wait_seconds=1.0).max_wait_seconds == 1.0
    with pytest.raises(SettingsError, match="max_wait_seconds"):
        settings.replace(max_wait_seconds=-1.0)


def test_every_field_has_its_own_variable_and_flag() -> None:
    for cls in ALL:
        options = common.options(cls)
        assert set(options) == set(cls.model_fields)
        envs = [option.env for option in options.values()]
        assert len(envs) == len(set(envs)), cls
        assert all(option.flags or option.positional for option in options.values()), cls
    assert common.options(DispatcherSettings)["sweep_seconds"].env == "FAAS_SWEEP_SECONDS"
    assert common.options(WorkerSettings)["max_output_bytes"].env == "FAAS_MAX_OUTPUT_BYTES"


# --- flags over environment ----------------------------------------------------------------


def test_dispatcher_flags_override_the_environment() -> None:
    env = {
        "FAAS_DISPATCHER_ADDRESS": "127.0.0.2:9000",
        "FAAS_HEARTBEAT_SECONDS": "2",
        "FAAS_MAX_ATTEMPTS": "5",
        "FAAS_WORKER_PROCESSES": "3",
    }
    settings = _load(DispatcherSettings, ["-m", "local", "-p", "0", "--heartbeat", "0.5"], env)
    assert settings.address == "127.0.0.2:0"
    assert (settings.mode, settings.heartbeat_seconds) == ("local", 0.5)
    assert (settings.max_attempts, settings.local_processes) == (5, 3)
    settings = _load(DispatcherSettings, ["--host", "127.0.0.3", "-w", "2"], env)
    assert (settings.address, settings.local_processes) == ("127.0.0.3:9000", 2)


def test_the_launchers_command_lines_still_parse() -> None:
    dispatcher = _load(
        DispatcherSettings,
        ["-m", "pull", "--host", "127.0.0.1", "-p", "5", "-w", "2", "--heartbeat", "1.0"],
        {},
    )
    assert (dispatcher.address, dispatcher.mode, dispatcher.local_processes) == (
        "127.0.0.1:5",
        "pull",
        2,
    )
    gateway = _load(
        GatewaySettings, ["--address", "127.0.0.1:6", "--dispatcher", "127.0.0.1:5"], {}
    )
    assert (gateway.address, gateway.dispatcher_target) == ("127.0.0.1:6", "127.0.0.1:5")
    rest = _load(
        RestSettings, ["--host", "127.0.0.1", "--port", "7", "--gateway", "127.0.0.1:6"], {}
    )
    assert (rest.host, rest.port, rest.gateway_target) == ("127.0.0.1", 7, "127.0.0.1:6")
    worker = _load(
        WorkerSettings, ["2", "grpc://127.0.0.1:5", "--worker-id", "w-1", "--mode", "push"], {}
    )
    assert (worker.processes, worker.dispatcher_target) == (2, "127.0.0.1:5")
    assert (worker.worker_id, worker.mode) == ("w-1", "push")


def test_worker_positionals_are_optional_and_override_the_environment() -> None:
    env = {"FAAS_WORKER_PROCESSES": "4", "FAAS_DISPATCHER_TARGET": "tcp://h:1"}
    worker = _load(WorkerSettings, [], env)
    assert (worker.processes, worker.dispatcher_target, worker.mode) == (4, "h:1", "")
    assert _load(WorkerSettings, ["3"], env).processes == 3


def test_label_and_resource_flags_repeat_and_combine() -> None:
    argv = ["--label", "gpu=h200", "--label", "zone=a,x=y", "--resource", "gpu=1"]
    worker = _load(WorkerSettings, [*argv, "--resource", "mem=2.5"], {"FAAS_LABELS": "old=1"})
    assert worker.labels == {"gpu": "h200", "zone": "a", "x": "y"}  # flags replace the variable
    assert worker.resources == {"gpu": 1.0, "mem": 2.5}
    assert _load(WorkerSettings, [], {"FAAS_LABELS": "a=1,b=2"}).labels == {"a": "1", "b": "2"}


def test_a_bad_flag_is_one_line_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        _load(RestSettings, ["--port", "abc"], {"FAAS_REST_PORT": "9000"})
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("faas-test: error: --port 'abc'"), err
    with pytest.raises(SystemExit):
        _load(WorkerSettings, ["0", "h:1"], {})
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "N_PROCESSES '0'" in err, err


# --- the real entry points -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "args", "env", "named"),
    [
        ("services.gateway.rest", [], {"FAAS_REST_PORT": "abc"}, "FAAS_REST_PORT='abc'"),
        ("services.dispatcher", [], {"FAAS_LOG_JSON": "maybe"}, "FAAS_LOG_JSON='maybe'"),
        ("services.gateway", ["--max-payload-bytes", "x"], {}, "--max-payload-bytes 'x'"),
        ("services.worker", ["0", "127.0.0.1:1"], {}, "N_PROCESSES '0'"),
    ],
)
def test_the_entry_point_exits_2_with_one_line(
    module: str, args: list[str], env: dict[str, str], named: str
) -> None:
    run = _run(module, args, env)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], run.stderr


def test_help_lists_every_variable() -> None:
    run = _run("services.dispatcher", ["--help"], {})
    assert run.returncode == 0, run.stderr
    for option in common.options(DispatcherSettings).values():
        assert option.env in run.stdout


# --- the README ----------------------------------------------------------------------------


def test_readme_configuration_matches_the_models() -> None:
    readme = (ROOT / "README.md").read_text()
    begin, end = common.MARKDOWN_BEGIN, common.MARKDOWN_END
    assert begin in readme and end in readme
    documented = readme.split(begin, 1)[1].split(end, 1)[0]
    assert documented.strip() == common.markdown().strip(), (
        "README's configuration tables are stale: run "
        "`python -m services.common.settings --markdown` and paste its output"
    )
