"""A long poll in flight while the platform stops gets JSON, never a plain 500 (issue 9).

A report saw ``GET /result/{id}?wait=10`` answered with uvicorn's plain-text 500 "Internal
Server Error" while ``make run`` stopped the platform: the REST shim's graceful stop waits 5 s for
requests in flight and then cancels them, and uvicorn answers a cancelled request with a 500.
The request here is known to be in flight: the shim has read it from its socket.
"""

from __future__ import annotations

import http.client
import json
import signal
import threading
from pathlib import Path

import pytest

from services.launcher import Platform
from tests.integration.conftest import PlatformFactory
from tests.support import RestClient, wait_until

pytestmark = pytest.mark.slow


def idle(x: int) -> int:
    return x


def _unread_bytes(server_port: int, client_port: int) -> int | None:
    """Bytes the server has not read yet on the connection from ``client_port`` (or None)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        if int(local.split(":")[1], 16) == server_port and (
            int(remote.split(":")[1], 16) == client_port
        ):
            return int(queues.split(":")[1], 16)
    return None


def _long_poll_in_flight(platform: Platform, task_id: str) -> http.client.HTTPConnection:
    """A ``GET /result/{task_id}?wait=10`` sent and read by the shim, its answer not yet in."""
    port = platform.config.rest_port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=90)
    connection.connect()
    assert connection.sock is not None
    client_port = connection.sock.getsockname()[1]
    connection.request("GET", f"/result/{task_id}?wait=10")
    wait_until(lambda: _unread_bytes(port, client_port) == 0, 30, "the shim to read the request")
    return connection


def _queued_task(platform: Platform) -> str:
    """A task that stays QUEUED: the platform has no worker."""
    rest = RestClient(platform.rest_url)
    try:
        task_id = rest.execute(rest.register(idle), 1)
        assert rest.status(task_id) == "QUEUED"
    finally:
        rest.close()
    return task_id


def _assert_json_answer(connection: http.client.HTTPConnection, task_id: str) -> None:
    response = connection.getresponse()
    body = response.read().decode(errors="replace")
    assert response.status in (200, 503), (response.status, body)
    assert response.getheader("content-type") == "application/json", (response.status, body)
    answer = json.loads(body)
    if response.status == 200:
        assert answer["task_id"] == task_id and answer["status"] == "QUEUED", answer
        assert answer["result"] is None, answer
    else:
        assert isinstance(answer["detail"], str) and answer["detail"], answer


@pytest.mark.parametrize("part", ["rest", "gateway"])
def test_a_long_poll_gets_json_when_a_part_is_stopped(
    make_platform: PlatformFactory, part: str
) -> None:
    platform = make_platform(workers=0, worker_processes=1)
    task_id = _queued_task(platform)
    connection = _long_poll_in_flight(platform, task_id)
    try:
        service = platform.rest if part == "rest" else platform.gateway
        service.send_signal(signal.SIGTERM)
        _assert_json_answer(connection, task_id)
        assert service.process is not None
        assert service.process.wait(60) == 0
    finally:
        connection.close()


def test_a_request_cut_short_by_the_shims_grace_is_a_503(make_platform: PlatformFactory) -> None:
    """The gateway frozen (SIGSTOP): nothing answers within the shim's 5 s grace."""
    platform = make_platform(workers=0, worker_processes=1)
    task_id = _queued_task(platform)
    connection = _long_poll_in_flight(platform, task_id)
    platform.gateway.send_signal(signal.SIGSTOP)
    try:
        platform.rest.send_signal(signal.SIGTERM)
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
        assert response.status == 503, (response.status, body)
        assert response.getheader("content-type") == "application/json", body
        assert "shutting down" in json.loads(body)["detail"], body
        assert platform.rest.process is not None and platform.rest.process.wait(60) == 0
    finally:
        platform.gateway.send_signal(signal.SIGCONT)
        connection.close()


def test_a_long_poll_gets_json_while_the_platform_stops(make_platform: PlatformFactory) -> None:
    """What the launcher does on Ctrl-C: stop every part in turn, the REST shim first."""
    platform = make_platform(workers=0, worker_processes=1)
    task_id = _queued_task(platform)
    connection = _long_poll_in_flight(platform, task_id)
    stopping = threading.Thread(target=platform.stop)
    stopping.start()
    try:
        _assert_json_answer(connection, task_id)
    finally:
        connection.close()
        stopping.join(120)
    assert not stopping.is_alive()
    assert platform.rest.process is not None and platform.rest.process.returncode == 0
