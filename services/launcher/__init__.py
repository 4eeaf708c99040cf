"""Starting the whole platform as separate processes: ``faas up``, ``make run`` and the tests."""

from .platform import Platform, PlatformConfig, ServiceProcess
from .redis_server import RedisServer, find_redis_server, free_port

__all__ = [
    "Platform",
    "PlatformConfig",
    "RedisServer",
    "ServiceProcess",
    "find_redis_server",
    "free_port",
]
