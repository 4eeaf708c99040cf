"""Starting the whole platform as separate processes: ``faas up``, ``make run`` and the tests."""

from .platform import Platform, PlatformConfig, ServiceProcess
from .redis_server import RedisServer, RedisVersionError, find_redis_server, free_port
from .supervisor import RestartPolicy, Supervisor

__all__ = [
    "Platform",
    "PlatformConfig",
    "RedisServer",
    "RedisVersionError",
    "RestartPolicy",
    "ServiceProcess",
    "Supervisor",
    "find_redis_server",
    "free_port",
]
