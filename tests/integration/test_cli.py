"""The ``faas`` command line, run as real processes against a running platform."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from services.launcher import Platform
from services.launcher.platform import grpc_serving
from services.launcher.redis_server import free_port
from tests.support import wait_until

TASKS = textwrap.dedent(
    """
    import math

    SCALE = 10

    def _scaled(value):
        return value * SCALE

    def combine(a, b, c=0):
        return _scaled(a + b) + c + math.floor(0.5)

    def fail(message):
        raise ValueError(message)

    def nap(seconds):
        import time
        time.sleep(seconds)
        return seconds

    if __name__ == "__main__":
        raise SystemExit("not run when registered")
    """
)


def faas(
    *args: str, target: str | None = None, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Runs ``python -m faas ARGS`` with FAAS_TARGET set to ``target``."""
    env = {k: v for k, v in os.environ.items() if k != "FAAS_TARGET"}
    if target is not None:
        env["FAAS_TARGET"] = target
    return subprocess.run(
        [sys.executable, "-m", "faas", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def json_out(run: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(run.stdout)


def one_line_error(run: subprocess.CompletedProcess[str]) -> str:
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    return lines[0]


@pytest.fixture(scope="module")
def target(shared_platform: Platform) -> str:
    return shared_platform.gateway_target


@pytest.fixture(scope="module")
def functions(target: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The functions of TASKS, registered once with ``faas register``: name -> function id."""
    path = tmp_path_factory.mktemp("cli") / "tasks.py"
    path.write_text(TASKS)
    ids = {}
    for name in ("combine", "fail", "nap"):
        run = faas("register", f"{path}:{name}", "--json", target=target)
        assert run.returncode == 0, run.stderr
        document = json_out(run)
        assert document["name"] == name
        ids[name] = document["function_id"]
    return ids


def test_help_documents_commands_and_exit_codes() -> None:
    run = faas("--help")
    assert run.returncode == 0
    for word in ("up", "register", "execute", "status", "result", "watch", "workers"):
        assert word in run.stdout
    assert "exit codes:" in run.stdout and "FAAS_TARGET" in run.stdout


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "faas"
    run = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0 and "exit codes:" in run.stdout


def test_register_prints_the_function_id(target: str, tmp_path: Path) -> None:
    path = tmp_path / "one.py"
    path.write_text("def one():\n    return 1\n")
    run = faas("register", f"{path}:one", "--name", "the one", target=target)
    assert run.returncode == 0, run.stderr
    function_id = run.stdout.strip()
    assert len(function_id) == 36
    waited = faas("execute", function_id, "--wait", target=target)
    assert (waited.returncode, waited.stdout) == (0, "1\n")


def test_execute_with_args_and_kwargs_and_wait(target: str, functions: dict[str, str]) -> None:
    run = faas(
        "execute",
        functions["combine"],
        "--args",
        "[1, 2]",
        "--kwargs",
        '{"c": 5}',
        "--wait",
        "--json",
        target=target,
    )
    assert run.returncode == 0, run.stderr
    document = json_out(run)
    assert document["status"] == "COMPLETED"
    assert document["result"] == 35 and document["result_repr"] == "35"
    assert document["error"] is None and document["attempts"] == 1

    human = faas("execute", functions["combine"], "--args", "[2, 2]", "--wait", target=target)
    assert (human.returncode, human.stdout) == (0, "40\n")


def test_execute_then_status_result_and_watch(target: str, functions: dict[str, str]) -> None:
    run = faas("execute", functions["nap"], "--args", "[0.5]", target=target)
    assert run.returncode == 0, run.stderr
    task_id = run.stdout.strip()

    status = faas("status", task_id, "--json", target=target)
    assert status.returncode == 0
    assert json_out(status)["status"] in ("QUEUED", "RUNNING", "COMPLETED")

    watch = faas("watch", task_id, "--json", target=target)
    assert watch.returncode == 0, watch.stderr
    states = [json.loads(line) for line in watch.stdout.splitlines()]
    assert states[-1]["status"] == "COMPLETED" and states[-1]["result"] == 0.5
    assert all(s["status"] in ("QUEUED", "RUNNING") for s in states[:-1])

    result = faas("result", task_id, target=target)
    assert (result.returncode, result.stdout) == (0, "0.5\n")
    assert faas("status", task_id, target=target).stdout == "COMPLETED\n"


def test_failed_task_exits_1_with_its_traceback_and_a_summary_line(
    target: str, functions: dict[str, str]
) -> None:
    run = faas("execute", functions["fail"], "--args", '["no luck"]', "--wait", target=target)
    assert run.returncode == 1
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):", run.stderr
    assert "in fail" in run.stderr and "ValueError: no luck" in lines[-2]
    assert "FAILED (RAISED)" in lines[-1] and "ValueError: no luck" in lines[-1]
    assert lines[-1].startswith("faas: task ")

    task_id = faas("execute", functions["fail"], "--args", '["again"]', target=target).stdout
    result = faas("result", task_id.strip(), "--wait", "--json", target=target)
    assert result.returncode == 1
    error = json_out(result)["error"]
    assert error["cause"] == "RAISED" and error["message"] == "ValueError: again"
    assert "Traceback" in error["traceback"]

    watch = faas("watch", task_id.strip(), target=target)
    assert watch.returncode == 1 and "FAILED" in watch.stdout
    assert "Traceback" in watch.stderr and "ValueError: again" in watch.stderr


def test_waits_that_run_out_exit_5(target: str, functions: dict[str, str]) -> None:
    run = faas("execute", functions["nap"], "--args", "[3]", "--wait-timeout", "0.5", target=target)
    assert run.returncode == 5
    assert "did not end within 0.5s" in one_line_error(run)

    task_id = faas("execute", functions["nap"], "--args", "[3]", target=target).stdout.strip()
    result = faas("result", task_id, "--json", target=target)
    assert result.returncode == 5
    assert json_out(result)["status"] in ("QUEUED", "RUNNING")


def test_unknown_ids_exit_3(target: str) -> None:
    run = faas("status", "no-such-task", target=target)
    assert run.returncode == 3
    assert one_line_error(run) == "faas: task 'no-such-task' not found"

    run = faas("execute", "no-such-function", "--json", target=target)
    assert run.returncode == 3
    error = json.loads(one_line_error(run))
    assert error["reason"] == "FUNCTION_NOT_FOUND" and error["exit_code"] == 3


@pytest.mark.parametrize(
    "args",
    [
        ["execute", "some-id", "--args", "[1,"],
        ["execute", "some-id", "--args", '{"a": 1}'],
        ["register", "missing.py:fn"],
        ["register", "no-colon"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(target: str, args: list[str]) -> None:
    run = faas(*args, target=target)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr


def test_unavailable_gateway_exits_4() -> None:
    address = f"127.0.0.1:{free_port()}"
    run = faas("--retries", "1", "status", "some-task", target=address)
    assert run.returncode == 4
    assert f"cannot reach the gateway at {address}" in one_line_error(run)


@pytest.mark.parametrize("command", [["status", "some-task"], ["workers", "--json"]])
def test_no_gateway_fails_promptly_with_the_address_tried(command: list[str]) -> None:
    """Nothing listens: the default retries give up within seconds (about 3.5 s), not 12 s."""
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    run = faas(*command, target=address, timeout=60)
    elapsed = time.monotonic() - started
    assert run.returncode == 4, run.stderr
    line = one_line_error(run)
    assert address in line and "connection refused" in line, line
    assert elapsed < 30, f"took {elapsed:.1f}s"


def test_a_terminal_is_told_at_once_what_is_being_tried() -> None:
    """On a terminal, stderr shows "connecting to ADDRESS ..." while the first connection waits,
    erased before the error line."""
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k != "FAAS_TARGET"}
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "faas", "status", "some-task", "--target", address],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=follower,
            env=env,
        )
        os.close(follower)
        follower = -1
        shown = b""
        with contextlib.suppress(OSError):  # EIO once the process has closed the terminal
            while chunk := os.read(leader, 4096):
                shown += chunk
        assert process.wait(timeout=60) == 4
        assert process.stdout is not None and process.stdout.read() == b""
        process.stdout.close()
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    text = shown.decode()
    assert f"connecting to {address} ..." in text, text
    assert (
        text.rstrip().rpartition("\r")[2].startswith(f"faas: cannot reach the gateway at {address}")
    )


def test_workers_table_and_json(target: str, shared_platform: Platform) -> None:
    worker_id = shared_platform.workers[0].name
    table = faas("workers", target=target)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].startswith("1 worker (push mode)")
    assert lines[1].split()[:3] == ["WORKER", "HOST", "PID"]
    assert lines[2].split()[0] == worker_id

    document = json_out(faas("workers", "--json", target=target))
    assert document["mode"] == "push"
    assert [(w["worker_id"], w["capacity"]) for w in document["workers"]] == [(worker_id, 2)]


def test_batch_from_an_args_file(target: str, functions: dict[str, str], tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    calls.write_text('[1, 1]\n\n{"args": [2], "kwargs": {"b": 2, "c": 1}}\n[0, 3]\n')
    run = faas(
        "execute",
        functions["combine"],
        "--args-file",
        str(calls),
        "--wait",
        "--json",
        target=target,
    )
    assert run.returncode == 0, run.stderr
    assert [t["result"] for t in json_out(run)["tasks"]] == [20, 41, 30]

    ids = faas(
        "execute", functions["combine"], "--args-file", "-", stdin="[1, 2]\n[3, 4]\n", target=target
    )
    assert ids.returncode == 0 and len(ids.stdout.split()) == 2

    failing = faas(
        "execute",
        functions["fail"],
        "--args-file",
        "-",
        "--wait",
        stdin='["a"]\n["b"]\n',
        target=target,
    )
    assert failing.returncode == 1
    lines = failing.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("FAILED: ") for line in lines)
    errors = failing.stderr.strip().splitlines()  # the first failure's traceback, a summary
    assert errors[0] == "Traceback (most recent call last):" and "ValueError: a" in errors[-2]
    assert errors[-1] == "faas: 2 of 2 tasks FAILED"


@pytest.mark.slow
def test_faas_up_runs_the_platform_until_interrupted(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("gateway", "dispatcher", "rest")}
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    up = subprocess.Popen(
        [
            sys.executable, "-m", "faas", "up",
            "--gateway-port", str(ports["gateway"]),
            "--dispatcher-port", str(ports["dispatcher"]),
            "--rest-port", str(ports["rest"]),
            "--data-dir", str(tmp_path / "data"),
            "--worker-processes", "1",
            "--metrics-port", "0",
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    target = f"127.0.0.1:{ports['gateway']}"
    assert up.stdout is not None
    extra: subprocess.Popen[str] | None = None
    seen = []
    try:
        wait_until(grpc_serving(target), 60, "the gateway started by faas up")
        workers = faas("workers", "--json", target=target)
        assert workers.returncode == 0, workers.stderr
        assert json_out(workers)["mode"] == "push"
        # The banner's "Enroll a worker" and "Add a worker" commands run as printed (here, from
        # the same directory): the dispatcher admits enrolled workers only.
        while not (line := up.stdout.readline()).startswith("Enroll a worker: "):
            assert line, "no 'Enroll a worker' line in the banner"
            seen.append(line)
        enroll = line.removeprefix("Enroll a worker: ").split("  (")[0].split()
        assert enroll[1:4] == ["-m", "faas", "tokens"] and enroll[-2:] == ["issue", "ID"]
        issued = subprocess.run(
            [*enroll[:-1], "extra-1"], env=env, capture_output=True, text=True, timeout=60
        )
        assert issued.returncode == 0, issued.stderr
        token = issued.stdout.strip()
        line = up.stdout.readline()
        assert line.startswith("Add a worker: FAAS_WORKER_TOKEN=TOKEN "), line
        command = line.removeprefix("Add a worker: FAAS_WORKER_TOKEN=TOKEN ").split()
        assert command[1:] == ["-m", "services.worker", "N", f"127.0.0.1:{ports['dispatcher']}"]
        extra = subprocess.Popen(
            [*command[:3], "1", command[4]],
            env={**env, "FAAS_WORKER_TOKEN": token},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def two_workers() -> bool:
            listed = faas("workers", "--json", target=target)
            return listed.returncode == 0 and len(json_out(listed)["workers"]) == 2

        wait_until(two_workers, 60, "the worker started from the banner's command")
    finally:
        if extra is not None:
            extra.terminate()
            extra.wait(timeout=60)
        up.send_signal(signal.SIGINT)
        try:
            output, _ = up.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
            output, _ = up.communicate()
    output = "".join(seen) + output
    assert up.returncode == 0, output
    assert "MPCSFaaS is up" in output and "stopped" in output
    # Workers import users' modules from the folder the platform was started from.
    assert f"  code path   {os.getcwd()}  (workers import your modules from here" in output
