"""Fixtures that start the real platform: redis-server and each service as its own process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from services.launcher import Platform, PlatformConfig
from tests.support import RestClient

PlatformFactory = Callable[..., Platform]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def make_platform(tmp_path: Path) -> Iterator[PlatformFactory]:
    """Starts platforms on free loopback ports; stops them after the test."""
    started: list[Platform] = []

    def make(**overrides: object) -> Platform:
        index = len(started)
        settings: dict[str, object] = {
            "mode": "push",
            "worker_processes": 2,
            "gateway_port": 0,
            "dispatcher_port": 0,
            "rest_port": 0,
            "data_dir": tmp_path / f"data{index}",
            "log_dir": tmp_path / f"logs{index}",
            # Open, so tests may connect fake and hand-started workers; enrollment (the
            # launcher's default) is tested on its own and by the shared platforms.
            "enroll": False,
        }
        settings.update(overrides)
        platform = Platform(PlatformConfig(**settings))  # type: ignore[arg-type]
        started.append(platform)
        platform.start()
        return platform

    yield make
    for platform in reversed(started):
        platform.stop()


@pytest.fixture(scope="module")
def shared_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One push-mode platform (one worker, 2 processes) for a module's functional tests."""
    root = tmp_path_factory.mktemp("platform")
    platform = Platform(
        PlatformConfig(
            worker_processes=2,
            gateway_port=0,
            dispatcher_port=0,
            rest_port=0,
            data_dir=root / "data",
            log_dir=root / "logs",
        )
    )
    platform.start()
    yield platform
    platform.stop()


@pytest.fixture
def rest(shared_platform: Platform) -> Iterator[RestClient]:
    client = RestClient(shared_platform.rest_url)
    yield client
    client.close()


@pytest.fixture
def redis_client(shared_platform: Platform) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(shared_platform.redis_url)
    yield client
    client.close()
