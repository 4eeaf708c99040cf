"""``python -m services.launcher`` (``make run``) as a real process (issue 9).

It supervises what it starts (a killed dispatcher or worker is restarted, one that keeps dying
stops the platform with its last log lines), a busy port is a one-line error, Ctrl-C stops every
process even when the output goes to a closed pipe, and it refuses a data folder written by a
newer Redis. What it started dies with it, even when it is killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from services.launcher import free_port
from tests.support import RestClient, wait_until

pytestmark = pytest.mark.slow

BANNER = "MPCSFaaS is up"
BANNER_END = "Ctrl-C stops everything."


def double(x: int) -> int:
    return 2 * x


class Output:
    """Everything a process writes to one real pipe, read by a thread until ``close()``."""

    def __init__(self, fd: int, process: subprocess.Popen[bytes] | None = None) -> None:
        self._fd = fd
        self._process = process
        self._data = b""
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._ended = ""  # why the reading stopped, once it has
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            while not self._closing.is_set():
                ready, _, _ = select.select([self._fd], [], [], 0.1)
                if not ready:
                    continue
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    self._ended = "end of file"
                    break
                with self._lock:
                    self._data += chunk
        except Exception as exc:
            self._ended = f"reading failed: {exc!r}"
            raise
        finally:
            os.close(self._fd)

    def text(self) -> str:
        with self._lock:
            return self._data.decode(errors="replace")

    def _state(self) -> str:
        """Whether the writer still runs and the reader still reads (for a failure message)."""
        process = "" if self._process is None else f"process {self._process.poll()=}, "
        return f"{process}reader: {self._ended or 'reading'}"

    def wait_for(self, needle: str, timeout: float) -> None:
        wait_until(
            lambda: needle in self.text(),
            timeout,
            lambda: f"{needle!r} ({self._state()}) in:\n{self.text()}",
            0.1,
        )

    def close(self) -> None:
        """Closes the reading end: from now on the writer writes to a closed pipe."""
        self._closing.set()
        self._thread.join(10)


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, start time, state) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[19]), fields[0]


def descendants(root: int) -> dict[tuple[int, int], str]:
    """Every live process under ``root``, keyed by (pid, start time), with its command line."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = stat[0]
    found: dict[tuple[int, int], str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and (stat := _stat(pid)) is not None:
                with contextlib.suppress(OSError):
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                    if cmdline:  # empty for a zombie
                        found[(pid, stat[1])] = cmdline.decode(errors="replace")
                frontier.append(pid)
    return found


def running(identities: dict[tuple[int, int], str]) -> list[str]:
    """The processes among ``identities`` still alive (same pid and start time, not a zombie)."""
    out = []
    for (pid, started), cmdline in identities.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == started and stat[2] != "Z":
            out.append(f"{pid}: {cmdline}")
    return out


def _kill_all(identities: dict[tuple[int, int], str]) -> None:
    for (pid, started), _ in identities.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == started:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _env() -> dict[str, str]:
    drop = ("REDIS_URL", "FAAS_REDIS_SERVER")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _argv(data_dir: Path, ports: dict[str, int], *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "services.launcher",
        "--gateway-port", str(ports["gateway"]),
        "--dispatcher-port", str(ports["dispatcher"]),
        "--rest-port", str(ports["rest"]),
        "--data-dir", str(data_dir),
        "--worker-processes", "1",
        "--metrics-port", "0",  # no fixed metrics ports: a make run elsewhere may hold them
        *extra,
    ]  # fmt: skip


class Launcher:
    """The launcher as a real process whose stdout and stderr go to one pipe."""

    def __init__(self, argv: list[str]) -> None:
        read, write = os.pipe()
        self.process = subprocess.Popen(
            argv, env=_env(), stdin=subprocess.DEVNULL, stdout=write, stderr=write
        )
        os.close(write)
        self.output = Output(read, self.process)
        self.seen: dict[tuple[int, int], str] = {}

    def processes(self) -> dict[tuple[int, int], str]:
        """Its processes now (and remembers them, to check later that they are gone)."""
        now = descendants(self.process.pid)
        self.seen.update(now)
        return now

    def pid_of(self, module: str) -> int:
        """The pid of the one ``python -m module`` it started."""
        pids = [
            pid
            for (pid, _), cmdline in self.processes().items()
            if f"-m {module} " in cmdline and (_stat(pid) or (0,))[0] == self.process.pid
        ]
        assert len(pids) == 1, (module, self.processes())
        return pids[0]

    def stop(self) -> int:
        """SIGINT (Ctrl-C), then its exit code; every process it started must be gone."""
        self.processes()
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(90)
        wait_until(
            lambda: not running(self.seen),
            30,
            lambda: f"its processes to end: {running(self.seen)}",
        )
        return code

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.processes()
            self.process.kill()
            self.process.wait()
        _kill_all(self.seen)
        self.output.close()


@pytest.fixture
def ports() -> dict[str, int]:
    return {name: free_port() for name in ("gateway", "dispatcher", "rest")}


LaunchFactory = Callable[..., Launcher]


@pytest.fixture
def launch(tmp_path: Path, ports: dict[str, int]) -> Iterator[LaunchFactory]:
    started: list[Launcher] = []

    def make(*extra: str) -> Launcher:
        started.append(Launcher(_argv(tmp_path / "data", ports, *extra)))
        return started[-1]

    yield make
    for launcher in started:
        launcher.cleanup()


@pytest.mark.fault
def test_killed_dispatcher_and_worker_are_restarted(
    launch: LaunchFactory, ports: dict[str, int]
) -> None:
    launcher = launch()
    launcher.output.wait_for(BANNER_END, 120)
    rest = RestClient(f"http://127.0.0.1:{ports['rest']}")
    try:
        function_id = rest.register(double)
        assert rest.run(function_id, 21) == 42
        dispatcher, worker = (
            launcher.pid_of("services.dispatcher"),
            launcher.pid_of("services.worker"),
        )
        os.kill(dispatcher, signal.SIGKILL)
        os.kill(worker, signal.SIGKILL)
        body = rest.wait_result(rest.execute(function_id, 4), timeout=120)
        assert body["status"] == "COMPLETED", body
        text = launcher.output.text()
        assert re.search(r"dispatcher \(pid \d+\) died \(killed by SIGKILL\); restarting", text), (
            text
        )
        assert re.search(r"worker-\S+ \(pid \d+\) died \(killed by SIGKILL\); restarting", text), (
            text
        )
        assert launcher.pid_of("services.dispatcher") != dispatcher
        assert launcher.pid_of("services.worker") != worker
    finally:
        rest.close()
    assert launcher.stop() == 0, launcher.output.text()
    assert "stopped" in launcher.output.text()


@pytest.mark.fault
def test_what_it_started_dies_with_a_killed_launcher(launch: LaunchFactory) -> None:
    """kill -9 of the launcher leaves no orphan: Redis, the services, the workers and their
    processes go too, including a part the supervisor restarted from its own thread."""
    launcher = launch("--workers", "2")
    launcher.output.wait_for(BANNER_END, 120)
    gateway = launcher.pid_of("services.gateway")
    os.kill(gateway, signal.SIGKILL)
    launcher.output.wait_for("restarted gateway", 60)
    wait_until(lambda: launcher.pid_of("services.gateway") != gateway, 30, "the gateway restarted")
    started = launcher.processes()
    commands = " | ".join(started.values())
    assert "redis-server" in commands and "-m services.dispatcher" in commands, commands
    assert commands.count("-m services.worker") == 2, commands
    assert "-m services.gateway " in commands and "-m services.gateway.rest" in commands, commands
    os.kill(launcher.process.pid, signal.SIGKILL)
    assert launcher.process.wait(30) == -signal.SIGKILL
    wait_until(
        lambda: not running(started), 30, lambda: f"its processes to die: {running(started)}"
    )


@pytest.mark.fault
def test_a_service_that_keeps_dying_stops_the_platform_with_its_log(launch: LaunchFactory) -> None:
    launcher = launch()
    launcher.output.wait_for(BANNER_END, 120)
    killed: set[int] = set()

    def kill_the_rest_shim() -> bool:
        if launcher.process.poll() is not None:
            return True
        with contextlib.suppress(AssertionError, OSError):
            pid = launcher.pid_of("services.gateway.rest")
            if pid not in killed:
                killed.add(pid)
                os.kill(pid, signal.SIGKILL)
        return False

    wait_until(kill_the_rest_shim, 120, "the launcher to give up on the REST shim", 0.1)
    code = launcher.process.wait(90)
    wait_until(
        lambda: not running(launcher.seen), 30, lambda: f"its processes: {running(launcher.seen)}"
    )
    text = launcher.output.text()
    assert code == 1, text
    assert len(killed) == 5, (killed, text)
    assert "rest died 5 times within 60 s; giving up" in text, text
    tail = text.partition("last lines of its log:")[2]
    assert " rest " in tail, text


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def run_until_exit(
    argv: list[str], env: dict[str, str] | None = None, timeout: float = 120.0
) -> tuple[int | None, str, list[str]]:
    """Runs a launcher that should exit by itself: its exit code (None if it had to be
    killed), its output, and the processes it started that were still running 30 s later.
    """
    read, write = os.pipe()
    process = subprocess.Popen(
        argv, env=env or _env(), stdin=subprocess.DEVNULL, stdout=write, stderr=write
    )
    os.close(write)
    output = Output(read)
    seen: dict[tuple[int, int], str] = {}
    code: int | None = None
    try:
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            seen.update(descendants(process.pid))
            time.sleep(0.02)  # sampling its children while it runs
        code = process.poll()
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not running(seen), 30, "its processes to end")
        left = running(seen)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        _kill_all(seen)
        output.close()
    return code, output.text(), left


@pytest.mark.parametrize("part", ["gateway", "dispatcher", "rest"])
def test_a_busy_port_is_a_one_line_error(part: str, tmp_path: Path, ports: dict[str, int]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports[part]))
        busy.listen()
        code, output, left = run_until_exit(_argv(tmp_path / "data", ports))
    assert code == 1 and not left, (output, left)
    assert BANNER not in output
    line = _one_line(output)
    assert f"port {ports[part]}" in line and part in line, line
    assert not (tmp_path / "data").exists(), "nothing started, not even Redis"


@pytest.mark.parametrize("service", ["services.gateway", "services.dispatcher"])
def test_a_service_will_not_share_its_port_with_a_grpc_server(service: str) -> None:
    """gRPC servers set SO_REUSEPORT: a second one on the same port used to start silently."""
    other = grpc.server(futures.ThreadPoolExecutor(1))
    port = other.add_insecure_port("127.0.0.1:0")
    other.start()
    try:
        flags = ["--address", f"127.0.0.1:{port}"]
        if service == "services.dispatcher":
            flags = ["--host", "127.0.0.1", "-p", str(port)]
        done = subprocess.run(
            [sys.executable, "-m", service, *flags, "--redis-url", "redis://127.0.0.1:1/0"],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        other.stop(None)
    assert done.returncode == 1, done.stderr
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr, done.stderr


def test_ctrl_c_with_output_to_a_closed_pipe_stops_everything(launch: LaunchFactory) -> None:
    launcher = launch()
    launcher.output.wait_for(BANNER_END, 120)
    started = launcher.processes()
    assert any("redis-server" in cmdline for cmdline in started.values()), started
    launcher.output.close()  # like `make run | head -1` once head has exited
    assert launcher.stop() == 0


def test_refuses_a_data_folder_written_by_a_newer_redis(
    tmp_path: Path, ports: dict[str, int]
) -> None:
    redis_dir = tmp_path / "data" / "redis"
    redis_dir.mkdir(parents=True)
    (redis_dir / "redis-version").write_text("99.0.0\n")
    code, output, left = run_until_exit(_argv(tmp_path / "data", ports))
    assert code == 1 and not left, (output, left)
    assert BANNER not in output
    line = _one_line(output)
    assert "99.0.0" in line and "6.2" in line, line
    assert (redis_dir / "redis-version").read_text() == "99.0.0\n"
    assert sorted(p.name for p in redis_dir.iterdir()) == ["redis-version"]


def test_a_part_that_fails_to_start_is_a_one_line_error(
    tmp_path: Path, ports: dict[str, int]
) -> None:
    env = {**_env(), "FAAS_MAX_ATTEMPTS": "not-a-number"}  # the dispatcher cannot start
    code, text, left = run_until_exit(_argv(tmp_path / "data", ports), env)
    assert code == 1 and not left, (text, left)
    assert BANNER not in text, text
    last = text.strip().splitlines()[-1]
    assert re.fullmatch(r"faas up: dispatcher ended during start-up \(exit code \d+\)", last), text
    assert (tmp_path / "data" / "redis" / "redis.log").exists(), "Redis had started"
