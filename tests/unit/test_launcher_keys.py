"""``make run --api-keys`` without starting anything: the setting, the non-loopback rule that
wants keys, and what the banner says with and without keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.settings import load
from services.launcher import Platform, PlatformConfig
from services.launcher.__main__ import _keys_note
from services.launcher.settings import LauncherSettings


def _load(argv: list[str], environ: dict[str, str] | None = None) -> LauncherSettings:
    return load(LauncherSettings, argv, environ or {}, prog="faas up", description="")


def _platform(tmp_path: Path, **overrides: object) -> Platform:
    # Nothing listens on these: the platform is only built, never started.
    config = PlatformConfig(
        gateway_port=1,
        dispatcher_port=2,
        rest_port=3,
        redis_url="redis://127.0.0.1:4/0",
        data_dir=tmp_path / "data",
        **overrides,  # type: ignore[arg-type]
    )
    return Platform(config)


def test_api_keys_from_the_flag_or_the_environment() -> None:
    assert not _load([]).api_keys
    assert _load(["--api-keys"]).platform_config().api_keys
    assert _load([], {"FAAS_API_KEYS": "1"}).api_keys


def test_a_non_loopback_host_wants_keys_as_well_as_tls(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        _load(["--host", "0.0.0.0", "--tls"])
    assert "without API keys (--api-keys)" in capsys.readouterr().err
    assert _load(["--host", "0.0.0.0", "--tls", "--api-keys"]).api_keys


def test_the_gateway_gets_the_keys_file_only_with_api_keys(tmp_path: Path) -> None:
    open_platform = _platform(tmp_path)
    assert open_platform.api_keys is None
    assert "FAAS_API_KEYS_FILE" not in open_platform.gateway.env
    keyed = _platform(tmp_path, api_keys=True)
    assert keyed.api_keys is not None
    assert keyed.api_keys.path == (tmp_path / "data" / "api_keys").absolute()
    assert keyed.gateway.env["FAAS_API_KEYS_FILE"] == str(keyed.api_keys.path)
    assert "FAAS_API_KEYS_FILE" not in keyed.rest.env  # only the gateway checks keys


def test_the_banner_says_open_or_how_to_call_with_the_key(tmp_path: Path) -> None:
    assert "open: no API key needed" in _keys_note(_platform(tmp_path))
    keyed = _platform(tmp_path, api_keys=True)
    later = _keys_note(keyed)  # a start that issued no key: the first one printed it
    assert "required" in later and "printed at its first start" in later
    assert "faas keys --keys-file" in later and "issue NAME --tenant TENANT" in later
    keyed.admin_key = "faas_admin.SECRET"
    first = _keys_note(keyed)
    assert "FAAS_API_KEY=faas_admin.SECRET" in first
    assert 'curl -H "Authorization: Bearer faas_admin.SECRET" http://127.0.0.1:3/workers' in first
