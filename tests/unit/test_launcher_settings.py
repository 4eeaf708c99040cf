"""The launcher's settings (issue 9): one model gives ``make run``'s flags, variables and table.

A bad value, from a flag or the environment, is one line naming it and exit code 2, before
anything starts (it used to be a traceback, argparse's usage, or silently misread).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.common import settings as common
from services.common.settings import SettingsError, load, markdown
from services.launcher.settings import LauncherSettings

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The launcher's real entry point; with a bad setting it must stop before starting."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAAS_") and k != "REDIS_URL"}
    return subprocess.run(
        [sys.executable, "-m", "services.launcher", *args],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_option_keeps_its_flag_and_variable() -> None:
    env = {
        "FAAS_DISPATCHER_MODE": "pull",
        "FAAS_WORKER_PROCESSES": "3",
        "FAAS_WORKERS": "2",
        "FAAS_HOST": "127.0.0.2",
        "FAAS_GATEWAY_PORT": "1",
        "FAAS_DISPATCHER_PORT": "2",
        "FAAS_REST_PORT": "3",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "FAAS_REDIS_SERVER": "/bin/redis-server",
        "FAAS_DATA_DIR": "/tmp/d",
        "FAAS_APPENDFSYNC": "always",
        "FAAS_CODE_PATH": "/tmp/a:/tmp/b",
    }
    config = LauncherSettings.from_env(env).platform_config()
    assert (config.mode, config.worker_processes, config.workers) == ("pull", 3, 2)
    assert (config.host, config.gateway_port, config.dispatcher_port, config.rest_port) == (
        "127.0.0.2",
        1,
        2,
        3,
    )
    assert config.redis_url == "redis://127.0.0.1:1/0"
    assert config.redis_server == "/bin/redis-server"
    assert (config.data_dir, config.appendfsync) == (Path("/tmp/d"), "always")
    assert config.extra_env["FAAS_CODE_PATH"] == "/tmp/a:/tmp/b"
    assert config.supervise is True and config.die_with_launcher is True

    argv = ["-m", "local", "-w", "1", "--workers", "0", "--rest-port", "0", "--gateway-port", "5"]
    argv += [
        "--dispatcher-port",
        "6",
        "--data-dir",
        "x",
        "--appendfsync",
        "no",
        "--host",
        "h",
        "--insecure",
    ]
    argv += ["--redis-url", "redis://h:2/0", "--redis-server", "rs", "--code-path", "/c"]
    flags = load(LauncherSettings, argv, env, prog="faas up", description=None)
    config = flags.platform_config()
    assert (config.mode, config.worker_processes, config.workers, config.host) == (
        "local",
        1,
        0,
        "h",
    )
    assert (config.gateway_port, config.dispatcher_port, config.rest_port) == (5, 6, 0)
    assert (config.data_dir, config.appendfsync) == (Path("x"), "no")
    assert (config.redis_url, config.redis_server) == ("redis://h:2/0", "rs")
    assert config.extra_env["FAAS_CODE_PATH"] == "/c"


def test_unset_or_empty_variables_start_an_embedded_redis_with_the_defaults() -> None:
    config = LauncherSettings.from_env(
        {"REDIS_URL": "", "FAAS_REDIS_SERVER": " "}
    ).platform_config()
    assert config.redis_url is None and config.redis_server is None
    assert (config.gateway_port, config.dispatcher_port, config.rest_port) == (50051, 50052, 8000)
    assert (config.mode, config.workers, config.data_dir) == ("push", 1, Path(".faas-data"))
    assert config.extra_env["FAAS_CODE_PATH"] == os.getcwd()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FAAS_WORKERS", "two"),
        ("FAAS_WORKERS", "-1"),
        ("FAAS_REST_PORT", "abc"),
        ("FAAS_REST_PORT", "70000"),
        ("FAAS_GATEWAY_PORT", "-1"),
        ("FAAS_WORKER_PROCESSES", "0"),
        ("FAAS_DISPATCHER_MODE", "fast"),
        ("FAAS_APPENDFSYNC", "sometimes"),
        ("FAAS_LOG_JSON", "maybe"),
    ],
)
def test_a_bad_variable_is_one_line_naming_it(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        LauncherSettings.from_env({variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}={value!r}: ") and "\n" not in message, message


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        ([], {"FAAS_WORKERS": "x"}, "FAAS_WORKERS='x'"),
        ([], {"FAAS_REST_PORT": "70000"}, "FAAS_REST_PORT='70000'"),
        (["--rest-port", "abc"], {}, "--rest-port 'abc'"),
        (["--workers", "-3"], {}, "--workers '-3'"),
    ],
)
def test_the_entry_point_exits_2_with_one_line(
    args: list[str], env: dict[str, str], named: str
) -> None:
    done = _run(args, env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"faas up: error: {named}: "), lines[0]


def test_the_launchers_table_is_among_the_readmes() -> None:
    tables = markdown()
    assert "### `python -m services.launcher`" in tables
    section = tables.partition("### `python -m services.launcher`")[2]
    for text in ("`FAAS_WORKERS`", "`--rest-port`", "`FAAS_REDIS_SERVER`", "`--appendfsync`"):
        assert text in section


def test_every_field_has_its_own_variable_and_flag() -> None:
    options = common.options(LauncherSettings)
    envs = [option.env for option in options.values()]
    assert len(envs) == len(set(envs))
    assert all(option.flags for option in options.values())


@pytest.mark.parametrize(("text", "value"), [("1", True), ("No", False), ("TRUE", True)])
def test_log_json_is_passed_on_to_every_part(text: str, value: bool) -> None:
    settings = LauncherSettings.from_env({"FAAS_LOG_JSON": text, "FAAS_LOG_LEVEL": "debug"})
    assert settings.log_json is value
    extra = settings.platform_config().extra_env
    assert extra["FAAS_LOG_JSON"] == ("1" if value else "0")
    assert extra["FAAS_LOG_LEVEL"] == "DEBUG"


def test_help_lists_every_variable() -> None:
    done = _run(["--help"], {})
    assert done.returncode == 0, done.stderr
    for option in common.options(LauncherSettings).values():
        assert option.env in done.stdout, option.env


def _load(argv: list[str], env: dict[str, str] | None = None) -> LauncherSettings:
    return load(LauncherSettings, argv, env or {}, prog="faas up", description="")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_hosts_start_open(host: str) -> None:
    assert _load(["--host", host]).host == host


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5", "::", "my-host.example"])
def test_a_non_loopback_host_refuses_to_start_open_unless_insecure(
    host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        _load(["--host", host])
    assert stopped.value.code == 2
    assert f"--host {host} is not a loopback address: without TLS (--tls)" in (
        capsys.readouterr().err
    )
    assert _load(["--host", host, "--insecure"]).insecure
    assert _load(["--host", host], {"FAAS_INSECURE": "1"}).insecure
    done = _run(["--host", host, "--data-dir", str(tmp_path / "data")], {})
    assert done.returncode == 2, done.stderr
    assert "or --insecure (FAAS_INSECURE=1)" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # nothing started
