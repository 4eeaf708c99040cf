"""The embedded Redis lets no one in without a password, and each service only as far as it
needs (issue 12): the default user is off, the gateway and the dispatcher have ACL users of their
own, and no process but those two is given a Redis URL (workers and the REST shim never talk to
Redis, and user code runs under the workers).
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import dill
import pytest
import redis
from faas.v1 import common_pb2, gateway_pb2

from services.launcher import Platform, RedisServer
from tests.integration.conftest import PlatformFactory
from tests.support import GrpcClient, RestClient, wait_until

# Commands no service needs, each with what proves it was refused before it ran.
FORBIDDEN = [
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("CONFIG", "GET", "*"),
    ("CONFIG", "SET", "appendonly", "no"),
    ("ACL", "LIST"),
    ("DEBUG", "SLEEP", "0"),
    ("SHUTDOWN", "NOSAVE"),
    ("MODULE", "LIST"),
    ("KEYS", "*"),
    ("SCAN", "0"),
    ("CLIENT", "LIST"),
    ("MONITOR",),
]


def double(x: int) -> int:
    return 2 * x


def nap_then_double(x: int) -> int:
    import time

    time.sleep(4)
    return 2 * x


def boom() -> None:
    raise ValueError("boom")


def raw_replies(port: int, *commands: bytes) -> list[bytes]:
    """The first reply line to each of ``commands`` (inline commands on one connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"".join(command + b"\r\n" for command in commands))
        data = b""
        while data.count(b"\r\n") < len(commands):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n")[: len(commands)]


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {key.decode(): value.decode(errors="replace") for key, _, value in pairs}


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def denied(client: redis.Redis) -> list[str]:
    """What Redis refused to the platform's users (its ACL LOG), as "user: command" lines."""
    return [f"{entry['username']}: {entry['object']}" for entry in client.acl_log()]


@pytest.fixture
def platform(make_platform: PlatformFactory) -> Platform:
    return make_platform(mode="push", workers=1, worker_processes=2)


@pytest.fixture
def admin(platform: Platform) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(platform.redis_url, socket_timeout=10)
    yield client
    client.close()


def test_a_client_without_a_password_gets_noauth_for_everything(platform: Platform) -> None:
    assert platform.redis is not None
    port = platform.redis.port
    replies = raw_replies(
        port,
        b"GET faas:queued",
        b"EVAL \"return redis.call('FLUSHALL')\" 0",
        b"KEYS *",
        b"HGETALL faas:task:x",
        b"FLUSHALL",
        b"CONFIG GET requirepass",
        b"AUTH default ''",
        b"AUTH faas-gateway wrong-password",
    )
    assert all(reply.startswith(b"-NOAUTH") for reply in replies[:6]), replies
    assert all(reply.startswith(b"-WRONGPASS") for reply in replies[6:]), replies
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port, socket_timeout=10).ping()


@pytest.mark.parametrize("service", ["gateway", "dispatcher"])
def test_a_service_user_runs_only_the_commands_and_keys_it_needs(
    platform: Platform, admin: redis.Redis, service: str
) -> None:
    url = getattr(platform, service).env["REDIS_URL"]
    assert f"faas-{service}:" in url
    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        assert client.ping()
        for command in FORBIDDEN:
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)
        # Keys outside the platform's prefix, and scripts that reach for what the user may not.
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command("HGET", "elsewhere:task:1", "status")
        with pytest.raises(redis.exceptions.ResponseError, match="can't run this command"):
            client.register_script("return redis.call('FLUSHALL')")()
        with pytest.raises(redis.exceptions.ResponseError, match="can't run this command"):
            client.register_script("return redis.call('DEL', 'faas:queued')")()
        assert client.execute_command("HGET", "faas:task:none", "status") is None
    finally:
        client.close()
    assert admin.ping() and admin.dbsize() >= 0  # still up: nothing above ran
    assert admin.config_get("appendonly") == {"appendonly": "yes"}


def test_tasks_run_end_to_end_with_nothing_refused(platform: Platform, admin: redis.Redis) -> None:
    """Registration, executes (with an idempotency key and a placement no worker has), failures,
    and a task whose worker is killed (requeued): every store path, none refused by the ACLs."""
    rest = RestClient(platform.rest_url)
    grpc_client = GrpcClient(platform)
    try:
        function_id = rest.register(double)
        assert rest.run(function_id, 21) == 42
        body = rest.wait_result(rest.execute(rest.register(boom)))
        assert body["status"] == "FAILED", body
        request = gateway_pb2.ExecuteBatchRequest(
            function_id=function_id, payloads=[dill.dumps(((x,), {})) for x in range(3)]
        )
        request.request_id = f"auth-{os.getpid()}"
        first = list(grpc_client.stub.ExecuteBatch(request, timeout=30).task_ids)
        again = list(grpc_client.stub.ExecuteBatch(request, timeout=30).task_ids)
        assert first == again
        assert [s.status for s in grpc_client.wait_all(first)] == [
            common_pb2.TASK_STATUS_COMPLETED
        ] * 3
        unplaceable = gateway_pb2.ExecuteBatchRequest(
            function_id=function_id,
            payloads=[dill.dumps(((1,), {}))],
            placement=common_pb2.Placement(labels={"zone": "nowhere"}),
        )
        (waiting,) = grpc_client.stub.ExecuteBatch(unplaceable, timeout=30).task_ids

        def pending_reason() -> str:
            reply = grpc_client.stub.GetStatus(
                gateway_pb2.GetStatusRequest(task_id=waiting), timeout=10
            )
            return str(reply.pending_reason)

        wait_until(pending_reason, 60, "the dispatcher to say why the task waits")
        # A worker dies under a running task: the dispatcher requeues it to the next worker.
        slow = rest.execute(rest.register(nap_then_double), 5)
        wait_until(lambda: rest.status(slow) == "RUNNING", 60, "the slow task to start")
        platform.workers[0].kill()
        platform.add_worker()
        body = rest.wait_result(slow, timeout=120)
        assert body["status"] == "COMPLETED", body
        assert int(admin.hget(f"faas:task:{slow}", "attempts") or 0) == 2
    finally:
        rest.close()
        grpc_client.channel.close()
    assert denied(admin) == []


def test_only_the_gateway_and_dispatcher_are_given_redis(platform: Platform) -> None:
    assert platform.redis is not None
    passwords = platform.redis.passwords
    gateway = environ(platform.gateway.pid)["REDIS_URL"]
    dispatcher = environ(platform.dispatcher.pid)["REDIS_URL"]
    assert passwords["faas-gateway"] in gateway and passwords["faas-dispatcher"] in dispatcher
    assert passwords["faas-admin"] not in gateway + dispatcher
    # The worker agents, their pool processes (user code) and the REST shim: no Redis URL, no
    # password of any user anywhere in their environment.
    rest = RestClient(platform.rest_url)
    try:
        rest.run(rest.register(double), 1)  # the pool processes are up
    finally:
        rest.close()
    pids = [platform.rest.pid]
    for worker in platform.workers:
        pids += [worker.pid, *children(worker.pid)]
    assert len(pids) >= 4, pids  # the shim, an agent and its two pool processes
    for pid in pids:
        env = environ(pid)
        assert "REDIS_URL" not in env, pid
        text = "\0".join(env.values())
        assert not [user for user, password in passwords.items() if password in text], pid


def test_the_passwords_are_private_and_kept_across_restarts(
    make_platform: PlatformFactory, tmp_path: Path
) -> None:
    data = tmp_path / "kept"
    platform = make_platform(data_dir=data, workers=1)
    assert platform.redis is not None
    credentials, acl = platform.redis.credentials_path, platform.redis.acl_path
    assert credentials.parent == data / "redis"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(acl.stat().st_mode) == 0o600
    assert stat.S_IMODE(credentials.parent.stat().st_mode) == 0o700  # the AOF too is private
    passwords = dict(platform.redis.passwords)
    assert set(passwords) == {"faas-admin", "faas-gateway", "faas-dispatcher"}
    # Neither the aclfile Redis reads nor its command line holds a password.
    seen = acl.read_text() + Path(f"/proc/{platform.redis.pid}/cmdline").read_text()
    assert not [user for user, password in passwords.items() if password in seen]
    rest = RestClient(platform.rest_url)
    try:
        function_id = rest.register(double)
        assert rest.run(function_id, 2) == 4
        platform.redis.restart(signal.SIGKILL)  # what the supervisor does to a killed Redis
        wait_until(lambda: _runs(rest, function_id), 60, "a task to run after Redis restarted")
    finally:
        rest.close()
    platform.stop()
    credentials.chmod(0o644)
    again = make_platform(data_dir=data, workers=1)
    assert again.redis is not None and again.redis.passwords == passwords
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    rest = RestClient(again.rest_url)
    try:
        assert rest.run(function_id, 5) == 10  # the function survived, under the same users
    finally:
        rest.close()


def _runs(rest: RestClient, function_id: str) -> bool:
    try:
        return bool(rest.run(function_id, 3) == 6)
    except AssertionError:  # 503 while the services reconnect
        time.sleep(0.2)
        return False


def test_an_operators_redis_url_goes_to_the_gateway_and_dispatcher_only(
    make_platform: PlatformFactory, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "own-redis")
    server.start()
    try:
        platform = make_platform(redis_url=server.url, workers=1)
        assert platform.redis is None
        assert environ(platform.gateway.pid)["REDIS_URL"] == server.url
        assert environ(platform.dispatcher.pid)["REDIS_URL"] == server.url
        for pid in (platform.rest.pid, platform.workers[0].pid):
            assert "REDIS_URL" not in environ(pid)
        assert server.passwords["faas-admin"] not in platform.redis_address
        rest = RestClient(platform.rest_url)
        try:
            assert rest.run(rest.register(double), 4) == 8
        finally:
            rest.close()
        platform.stop()
    finally:
        server.stop()
