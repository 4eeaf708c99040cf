"""The SDK's and the CLI's pure parts: error mapping, outcomes, inputs, output, progress."""

from __future__ import annotations

import importlib
import io
import json
import logging
import pickle
import platform
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import cloudpickle
import dill
import grpc
import pytest
from faas import _serde, _transport, errors
from faas._models import TaskInfo, TaskStatus, WorkerInfo, WorkersReport
from faas._serde import dumps_call, outcome
from faas._transport import RetryPolicy
from faas.cli import _exit, _inputs, _output, build_parser
from faas.cli._progress import ConnectingNotice, Progress
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from tests.support import wait_until


class FakeRpcError(grpc.RpcError):
    """A failed call as grpc raises it, with an optional rich status."""

    def __init__(self, code: grpc.StatusCode, details: str, reason: str = "") -> None:
        self._code, self._details, self._metadata = code, details, ()
        if reason:
            detail = any_pb2.Any()
            detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="test"))
            status = status_pb2.Status(
                code=getattr(code_pb2, code.name), message=details, details=[detail]
            )
            self._metadata = rpc_status.to_status(status).trailing_metadata

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return self._metadata  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("code", "reason", "kind"),
    [
        (grpc.StatusCode.NOT_FOUND, "TASK_NOT_FOUND", errors.TaskNotFound),
        (grpc.StatusCode.NOT_FOUND, "FUNCTION_NOT_FOUND", errors.FunctionNotFound),
        (grpc.StatusCode.NOT_FOUND, "", errors.NotFound),
        (grpc.StatusCode.INVALID_ARGUMENT, "PAYLOAD_NOT_PICKLE", errors.InvalidArgument),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "PAYLOAD_TOO_LARGE", errors.PayloadTooLarge),
        (grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE", errors.ServiceUnavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "", errors.FaaSTimeout),
        (grpc.StatusCode.INTERNAL, "", errors.FaaSError),
    ],
)
def test_rpc_errors_map_to_sdk_errors(
    code: grpc.StatusCode, reason: str, kind: type[errors.FaaSError]
) -> None:
    error = errors.from_rpc_error(FakeRpcError(code, "it went wrong", reason))
    assert type(error) is kind
    assert (error.code, error.reason, str(error)) == (code.name, reason, "it went wrong")


def test_unreachable_gateway_message_names_target_and_attempts() -> None:
    error = errors.from_rpc_error(
        FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused"),
        attempts=3,
        target="127.0.0.1:1",
    )
    assert str(error) == (
        "cannot reach the gateway at 127.0.0.1:1: connection refused (after 3 attempts)"
    )


def test_retry_policy_backs_off_exponentially_up_to_a_cap() -> None:
    policy = RetryPolicy(retries=4, backoff=0.5, max_backoff=2.0)
    assert policy.budget() == 0.5 + 1.0 + 2.0 + 2.0
    assert 0.8 <= policy.delay(1) <= 1.0 and 1.6 <= policy.delay(9) <= 2.0


def test_a_first_connection_waits_seconds_not_the_whole_backoff() -> None:
    assert RetryPolicy().budget() == 12.75
    assert RetryPolicy().connect_budget() == 3.5  # half a second per retry, plus one
    assert RetryPolicy(retries=0).connect_budget() == 0.5
    assert RetryPolicy(retries=6, backoff=0.01).connect_budget() == pytest.approx(0.5 + 0.63)


def test_connecting_notice_spins_until_the_first_connection_ends() -> None:
    shown = io.StringIO()
    notice = ConnectingNotice(shown, delay=0).attach()
    log = logging.getLogger(_transport.__name__)
    try:
        log.info("x", extra={"faas_connection": _transport.CONNECTING, "faas_target": "h:1"})
        wait_until(lambda: "connecting to h:1 ..." in shown.getvalue(), 30, "the spinner")
        log.info("x", extra={"faas_connection": _transport.UNREACHABLE, "faas_target": "h:1"})
    finally:
        notice.detach()
    assert "connecting to h:1 ..." in shown.getvalue()
    assert shown.getvalue().endswith("\r")  # erased before whatever comes next
    assert notice not in log.handlers
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)


def _ended(status: TaskStatus, payload: bytes, cause: str = "", tb: str = "") -> TaskInfo:
    return TaskInfo("t1", "f1", status, cause=cause, message="m", traceback=tb, payload=payload)


def test_outcome_gives_the_value_or_raises_the_task_error() -> None:
    assert outcome(_ended(TaskStatus.COMPLETED, dill.dumps([1, 2]))) == [1, 2]

    raised = _ended(TaskStatus.FAILED, dill.dumps(KeyError("k")), "RAISED", "Traceback ...")
    with pytest.raises(KeyError) as caught:
        outcome(raised)
    assert caught.value.__notes__ == ["\nRemote traceback (task t1):\nTraceback ..."]

    timed_out = _ended(TaskStatus.FAILED, pickle.dumps(TimeoutError("late")), "TIMEOUT")
    with pytest.raises(errors.TaskFailed) as failed:
        outcome(timed_out)
    assert failed.value.cause == "TIMEOUT" and isinstance(failed.value.__cause__, TimeoutError)

    unreadable = _ended(TaskStatus.FAILED, b"not a pickle", "RAISED")
    with pytest.raises(errors.TaskFailed):
        outcome(unreadable)
    with pytest.raises(errors.FaaSError, match="has not ended"):
        outcome(_ended(TaskStatus.RUNNING, b""))


def test_call_payload_is_args_and_kwargs() -> None:
    assert dill.loads(dumps_call([1], {"a": 2})) == ((1,), {"a": 2})


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        ((1, -(2**70), 2.5, "é", b"\x00", None, True), {"k": [1, (2, 3)], "d": {"x": {"y": 1}}}),
        (([[[[[1]]]]],), {}),  # deeper than the fast path looks: dill
        ((list(range(300)),), {}),  # more items than the fast path looks at: dill
        ((lambda x: x,), {}),  # not plain data: dill
        ((int, {1, 2}, frozenset()), {"c": 1j}),
    ],
)
def test_call_payload_is_dills_bytes_for_any_argument(args: tuple, kwargs: dict) -> None:
    payload = dumps_call(args, kwargs)
    assert payload == dill.dumps((args, kwargs))
    loaded_args, loaded_kwargs = dill.loads(payload)
    if not any(callable(a) and not isinstance(a, type) for a in args):
        assert (loaded_args, loaded_kwargs) == (args, kwargs)


USER_MODULE = """
import functools
import math

OFFSET = 5


def helper(x):
    return x + OFFSET


class Box:
    def __init__(self, x):
        self.x = x

    def grow(self):
        return Box(helper(self.x))


def twice(fn):
    @functools.wraps(fn)
    def wrapper(x):
        return fn(fn(x))

    return wrapper


@twice
def task(x):
    return Box(x).grow().x * 2 + math.floor(0.5)
"""


@pytest.fixture
def user_module(tmp_path: Path) -> Iterator[ModuleType]:
    """A module of the user's, imported from a folder that is on ``sys.path`` only meanwhile."""
    name = f"userlib_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        importlib.invalidate_caches()
        module = importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))
    yield module
    sys.modules.pop(name, None)


def forget(module: ModuleType) -> None:
    """Makes ``module`` unimportable here, as it is on a worker."""
    sys.modules.pop(module.__name__)
    Path(str(module.__file__)).unlink()
    importlib.invalidate_caches()


def test_user_module_function_is_pickled_by_value(user_module: ModuleType) -> None:
    registered = cloudpickle.list_registry_pickle_by_value()
    payload = _serde.dumps_function(user_module.task)
    reference = dill.dumps(user_module.helper)  # what dill alone sends: a reference
    forget(user_module)
    with pytest.raises(ModuleNotFoundError):
        dill.loads(reference)
    assert dill.loads(payload)(1) == 34  # helper, constant, class and decorator travel
    assert cloudpickle.list_registry_pickle_by_value() == registered  # registrations undone


def test_a_module_registered_by_the_caller_stays_registered(user_module: ModuleType) -> None:
    cloudpickle.register_pickle_by_value(user_module)
    try:
        _serde.pickle_function(user_module.task)
        assert user_module.__name__ in cloudpickle.list_registry_pickle_by_value()
    finally:
        cloudpickle.unregister_pickle_by_value(user_module)


def test_installed_code_stays_a_reference(user_module: ModuleType) -> None:
    for installed in (json, threading, dill, grpc, _serde, sys.modules["faas"]):
        assert not _serde.is_user_module(installed), installed
    assert _serde.is_user_module(user_module)
    assert not _serde.is_user_module(sys.modules["__main__"])
    payload = _serde.dumps_function(json.dumps)
    assert b"cloudpickle" not in payload and dill.loads(payload) is json.dumps


def test_nested_functions_go_by_value_and_dill_is_the_fallback() -> None:
    def outer(n: int) -> object:
        def inner(x: int) -> int:
            return x + n

        return inner

    pickled = _serde.pickle_function(outer(3))  # type: ignore[arg-type]
    assert pickled.serializer == "cloudpickle" and dill.loads(pickled.payload)(1) == 4

    lock = threading.Lock()  # cloudpickle cannot pickle a lock; dill can

    def locked(x: int) -> int:
        with lock:
            return x

    fallback = _serde.pickle_function(locked)
    assert fallback.serializer == "dill" and dill.loads(fallback.payload)(7) == 7
    with pytest.raises(TypeError, match="expected a callable"):
        _serde.pickle_function(42)  # type: ignore[arg-type]


def test_runtime_says_what_pickled_the_function() -> None:
    runtime = _serde.runtime("cloudpickle")
    assert runtime.python_version == platform.python_version()
    assert (runtime.dill_version, runtime.serializer) == (dill.__version__, "cloudpickle")
    assert runtime.cloudpickle_version == cloudpickle.__version__
    assert runtime.pickle_protocol == 0  # the gateway reads it from the payload
    assert _serde.runtime("dill").cloudpickle_version == ""


def test_load_function_sends_it_by_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sibling = f"sibling_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{sibling}.py").write_text("def base():\n    return 100\n")
    path = tmp_path / "tasks.py"
    path.write_text(
        f"from {sibling} import base\n\nOFFSET = 5\n\ndef helper(x):\n    return x + OFFSET\n\n"
        "def task(x):\n    return helper(x) * 2 + base()\n\n"
        "if __name__ == '__main__':\n    raise SystemExit('must not run')\n"
    )
    monkeypatch.chdir("/")  # the file's folder is put on sys.path while it loads
    try:
        fn = _inputs.load_function(f"{path}:task")
        assert str(tmp_path) not in sys.path
        payload = _serde.dumps_function(fn)
        forget(sys.modules[sibling])
    finally:
        sys.modules.pop(sibling, None)
    path.unlink()  # the pickle needs neither the file nor its sibling
    assert dill.loads(payload)(1) == 112
    for spec, message in [
        ("no-colon", "expected FILE.py:FUNC"),
        (f"{tmp_path}/missing.py:f", "no such file"),
    ]:
        with pytest.raises(_inputs.UsageError, match=message):
            _inputs.load_function(spec)


def test_json_inputs_are_checked() -> None:
    assert _inputs.parse_args("[1, 2]") == [1, 2]
    assert _inputs.parse_kwargs('{"a": 1}') == {"a": 1}
    for bad in ("{", '{"a": 1}'):
        with pytest.raises(_inputs.UsageError):
            _inputs.parse_args(bad)
    with pytest.raises(_inputs.UsageError):
        _inputs.parse_kwargs("[1]")
    calls = io.StringIO('[1]\n\n{"args": [2], "kwargs": {"b": 3}}\n')
    assert list(_inputs.read_calls(calls, "f")) == [([1], {}), ([2], {"b": 3})]
    with pytest.raises(_inputs.UsageError, match="f line 1"):
        list(_inputs.read_calls(io.StringIO("7\n"), "f"))


def test_exit_codes() -> None:
    assert _exit.code_for(_inputs.UsageError("x")) == 2
    assert _exit.code_for(errors.TaskNotFound("x")) == 3
    assert _exit.code_for(errors.ServiceUnavailable("x")) == 4
    assert _exit.code_for(errors.FaaSTimeout("x")) == 5
    assert _exit.code_for(errors.PayloadTooLarge("x")) == 6
    assert _exit.code_for(errors.TaskFailed("t", "TIMEOUT", "x")) == 1
    assert _exit.code_for(RuntimeError("x")) == 7
    assert "exit codes:" in build_parser().format_help()


def test_workers_table() -> None:
    worker = WorkerInfo("w-1", "host", 42, 4, 3, 10, 6, 1, "push", False)
    table = _output.workers_table(WorkersReport("push", 2, (worker,)))
    lines = table.splitlines()
    assert lines[0] == "1 worker (push mode), 2 tasks queued"
    assert lines[2].split() == ["w-1", "host", "42", "push", "4", "3", "75%", "6", "1"]
    assert _output.workers_table(WorkersReport("pull", 0, ())) == (
        "0 workers (pull mode), 0 tasks queued"
    )


def test_progress_draws_only_when_enabled() -> None:
    shown = io.StringIO()
    with Progress(shown, enabled=True, delay=0) as progress:
        progress.count(5, 10, "tasks")
        progress.spin("waiting")
    assert "[###############               ]  5/10 tasks" in shown.getvalue()
    assert shown.getvalue().endswith("\r")
    quiet = io.StringIO()  # not a TTY: nothing is drawn
    with Progress(quiet) as progress:
        progress.count(1, 2, "tasks")
    assert quiet.getvalue() == ""
