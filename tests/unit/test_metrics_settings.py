"""Where metrics are served: each service's --metrics-port, and the ports the launcher gives
each part (and prints). Nothing is started: the platform is only planned."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.settings import SettingsError
from services.dispatcher.settings import DispatcherSettings
from services.gateway.settings import GatewaySettings
from services.launcher import Platform, PlatformConfig
from services.launcher.__main__ import _metrics_note
from services.launcher.settings import LauncherSettings
from services.worker.settings import WorkerSettings


def test_services_serve_no_metrics_unless_given_a_port() -> None:
    for model in (GatewaySettings, DispatcherSettings, WorkerSettings):
        assert model().metrics_port is None
    assert GatewaySettings.from_env({"FAAS_GATEWAY_METRICS_PORT": "9301"}).metrics_port == 9301
    dispatcher = DispatcherSettings.from_env({"FAAS_DISPATCHER_METRICS_PORT": "0"})
    assert dispatcher.metrics_port == 0 and dispatcher.slow_wait_seconds == 30
    assert WorkerSettings.from_env({"FAAS_WORKER_METRICS_PORT": "9303"}).metrics_port == 9303
    with pytest.raises(SettingsError, match="FAAS_WORKER_METRICS_PORT='70000'"):
        WorkerSettings.from_env({"FAAS_WORKER_METRICS_PORT": "70000"})
    with pytest.raises(SettingsError, match="FAAS_SLOW_WAIT_SECONDS='0'"):
        DispatcherSettings.from_env({"FAAS_SLOW_WAIT_SECONDS": "0"})


def test_make_run_serves_metrics_on_fixed_ports_unless_told_0() -> None:
    assert LauncherSettings().platform_config().metrics_port == 9101
    assert LauncherSettings(metrics_port=9200).platform_config().metrics_port == 9200
    assert LauncherSettings(metrics_port=0).platform_config().metrics_port is None


def _flag(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_the_launcher_gives_each_part_the_next_port(tmp_path: Path) -> None:
    platform = Platform(PlatformConfig(metrics_port=9200, data_dir=tmp_path, enroll=False))
    assert _flag(platform.gateway.argv, "--metrics-port") == "9200"
    assert _flag(platform.dispatcher.argv, "--metrics-port") == "9201"
    first, second = platform.new_worker(), platform.new_worker()
    assert _flag(first.argv, "--metrics-port") == "9202"
    assert _flag(second.argv, "--metrics-port") == "9203"
    assert _flag(first.argv, "--metrics-host") == "127.0.0.1"
    assert platform.metrics_urls == {
        "gateway": "http://127.0.0.1:9200/metrics",
        "dispatcher": "http://127.0.0.1:9201/metrics",
        first.name: "http://127.0.0.1:9202/metrics",
        second.name: "http://127.0.0.1:9203/metrics",
    }
    note = _metrics_note(platform).splitlines()
    assert note[0] == "  metrics     http://127.0.0.1:9200/metrics  (gateway)"
    assert note[1] == "              http://127.0.0.1:9201/metrics  (dispatcher)"
    assert len(note) == 4


def test_without_metrics_no_part_gets_a_port(tmp_path: Path) -> None:
    platform = Platform(PlatformConfig(data_dir=tmp_path, enroll=False))
    worker = platform.new_worker()
    for part in (platform.gateway, platform.dispatcher, worker):
        assert "--metrics-port" not in part.argv
    assert platform.metrics_urls == {}
    assert "off" in _metrics_note(platform)


def test_metrics_port_0_gives_each_part_a_free_port(tmp_path: Path) -> None:
    platform = Platform(PlatformConfig(metrics_port=0, data_dir=tmp_path, enroll=False))
    ports = {url.rpartition(":")[2] for url in platform.metrics_urls.values()}
    assert len(ports) == 2 and "0/metrics" not in ports
