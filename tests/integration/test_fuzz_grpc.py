"""Property-based tests of every faas.v1.GatewayService request against a real gateway (issue 12).

Hypothesis builds each request from its fields (ids empty, random, overlong or real; names in
any Unicode; random and hostile payloads; durations across the whole int64/int32 range; odd
placements and runtimes), and raw bytes no message parses from (invalid UTF-8 in string fields
among them). Whatever comes, the gateway answers within a deadline, with OK or a status that
names the caller's mistake (never INTERNAL, UNKNOWN or a hang), every error has a message, and a
rejected request stores nothing: the store's records are counted in Redis around every call.
The gateway wants API keys and every call carries the fuzzers' key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import dill
import grpc
import pytest
from faas.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.launcher import Platform, PlatformConfig
from tests.integration.fuzz_support import (
    FUZZ_SETTINGS,
    Credentials,
    Records,
    StoredRecords,
    credentials,
    hostile_pickles,
)
from tests.support import GrpcClient

pytestmark = [pytest.mark.fault, pytest.mark.slow]

SERVICE = "faas.v1.GatewayService"
# The statuses that name a caller's mistake; anything else (INTERNAL, UNKNOWN, UNAVAILABLE on a
# healthy platform, DEADLINE_EXCEEDED) is a defect.
ALLOWED = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
EXAMPLES = 60
RAW_EXAMPLES = 40
DEADLINE = 30.0  # past it a call hung
LONG_POLL_DEADLINE = 60.0 + DEADLINE  # the gateway's longest GetResult wait, and the same margin
MAX_MESSAGE = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def shared_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """This module's platform: one push-mode worker, and API keys, as an exposed one has."""
    root = tmp_path_factory.mktemp("fuzz-grpc")
    platform = Platform(
        PlatformConfig(
            worker_processes=2,
            gateway_port=0,
            dispatcher_port=0,
            rest_port=0,
            data_dir=root / "data",
            log_dir=root / "logs",
            api_keys=True,
        )
    )
    platform.start()
    yield platform
    platform.stop()


@pytest.fixture(scope="module")
def caller(shared_platform: Platform) -> Credentials:
    return credentials(shared_platform)


@pytest.fixture(scope="module")
def channel(shared_platform: Platform) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(
        shared_platform.gateway_target,
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
        ],
    ) as opened:
        yield opened


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> gateway_pb2_grpc.GatewayServiceStub:
    return gateway_pb2_grpc.GatewayServiceStub(channel)


@pytest.fixture(scope="module")
def stored(shared_platform: Platform) -> Iterator[StoredRecords]:
    counter = StoredRecords(shared_platform)
    yield counter
    counter.close()


@pytest.fixture(scope="module")
def known(shared_platform: Platform, caller: Credentials) -> dict[str, list[str]]:
    """Real ids, so that requests get past NOT_FOUND: a function and tasks that have ended."""

    def inc(x: int) -> int:
        return x + 1

    client = GrpcClient(shared_platform, caller.api_key)
    try:
        function_id = client.register(inc)
        tasks = client.submit(function_id, [(1,), (2,)])
        states = client.wait_all(tasks)
        assert [state.status for state in states] == [common_pb2.TASK_STATUS_COMPLETED] * 2
        return {"function_id": [function_id], "task_id": tasks}
    finally:
        client.channel.close()


# --- strategies over the request fields -----------------------------------------------------


def ids(known_ids: list[str]) -> st.SearchStrategy[str]:
    """An id field: a real one, empty, short or overlong random text, or a real one mangled."""
    real = st.sampled_from(known_ids)
    return st.one_of(
        real,
        st.just(""),
        st.text(max_size=40),
        st.text(min_size=120, max_size=400),
        st.builds(lambda known, extra: known + extra, real, st.text(min_size=1, max_size=8)),
    )


def durations() -> st.SearchStrategy[duration_pb2.Duration | None]:
    """Unset, ordinary, or anywhere in the fields' range (negative, mixed signs, past ±10,000
    years, nanos past a second)."""
    return st.one_of(
        st.none(),
        st.builds(duration_pb2.Duration, seconds=st.integers(0, 120), nanos=st.just(0)),
        st.builds(
            duration_pb2.Duration,
            seconds=st.integers(-(2**63), 2**63 - 1),
            nanos=st.integers(-(2**31), 2**31 - 1),
        ),
    )


def placements() -> st.SearchStrategy[common_pb2.Placement | None]:
    amounts = st.floats(allow_nan=True, allow_infinity=True)
    return st.one_of(
        st.none(),
        st.builds(
            common_pb2.Placement,
            labels=st.dictionaries(st.text(max_size=300), st.text(max_size=300), max_size=4),
            resources=st.dictionaries(st.text(max_size=300), amounts, max_size=4),
            any_python=st.booleans(),
        ),
    )


def runtimes() -> st.SearchStrategy[common_pb2.Runtime | None]:
    text = st.text(max_size=300)
    return st.one_of(
        st.none(),
        st.builds(
            common_pb2.Runtime,
            python_version=text,
            dill_version=text,
            pickle_protocol=st.integers(0, 2**32 - 1),
            serializer=text,
            cloudpickle_version=text,
        ),
    )


def payloads(near_limit: bool) -> st.SearchStrategy[bytes]:
    return hostile_pickles(near_limit=near_limit).map(lambda hostile: hostile.data)


M = TypeVar("M", bound=Message)


def _with(message: M, **optional: Message | None) -> M:
    """``message`` with each of ``optional``'s submessages set that is not None."""
    for name, value in optional.items():
        if value is not None:
            getattr(message, name).CopyFrom(value)
    return message


def _short(message: Message) -> str:
    """A request, printable in a report: its bytes fields by length only."""
    text = repr(message)
    return text if len(text) < 2000 else text[:2000] + "..."


# --- the calls and what every answer must be -------------------------------------------------


class Outcome:
    """How one call ended: its status code and, for OK, the response."""

    def __init__(self, code: grpc.StatusCode, response: Any = None) -> None:
        self.code = code
        self.response = response


def _call(send: Callable[[], Any], what: str) -> Outcome:
    try:
        response = send()
    except grpc.RpcError as error:
        code, details = error.code(), error.details()
        assert code in ALLOWED, f"{what}: {code} {details!r}"
        assert details, f"{what}: {code} without a message"
        return Outcome(code)
    return Outcome(grpc.StatusCode.OK, response)


def _assert_stored(method: str, outcome: Outcome, before: Records, after: Records) -> None:
    """A rejected request stores nothing; an accepted one only the records it answered with."""
    grew = (
        after.functions - before.functions,
        after.tasks - before.tasks,
        after.requests - before.requests,
    )
    if outcome.code != grpc.StatusCode.OK:
        assert grew == (0, 0, 0), f"{method} failed ({outcome.code}) but stored {grew}"
    elif method == "RegisterFunction":
        assert grew == (1, 0, 0), (method, grew)
    elif method == "ExecuteFunction":
        assert grew[0] == 0 and 0 <= grew[1] <= 1 and 0 <= grew[2] <= 1, (method, grew)
    elif method == "ExecuteBatch":
        tasks = len(outcome.response.task_ids)
        assert grew[0] == 0 and 0 <= grew[1] <= tasks and 0 <= grew[2] <= tasks, (method, grew)
    else:
        assert grew == (0, 0, 0), (method, grew)


def _checked(
    stored: StoredRecords, method: str, request: Message, send: Callable[[], Any]
) -> Outcome:
    before = stored.now()
    outcome = _call(send, f"{method}({_short(request)})")
    _assert_stored(method, outcome, before, stored.now())
    return outcome


def _assert_serves_on(platform: Platform, caller: Credentials, function_id: str) -> None:
    """After the fuzz, a plain task of the known function still runs to its result."""
    client = GrpcClient(platform, caller.api_key)
    try:
        (state,) = client.wait_all(client.submit(function_id, [(41,)]))
        assert state.status == common_pb2.TASK_STATUS_COMPLETED, state
        assert dill.loads(state.result) == 42
    finally:
        client.channel.close()


# --- one property per method ---------------------------------------------------------------


def test_register_function(
    stub: gateway_pb2_grpc.GatewayServiceStub, caller: Credentials, stored: StoredRecords
) -> None:
    seen: set[grpc.StatusCode] = set()

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES)
    @given(
        name=st.text(max_size=400),
        payload=payloads(near_limit=True),
        timeout=durations(),
        runtime=runtimes(),
        placement=placements(),
    )
    def fuzz(
        name: str,
        payload: bytes,
        timeout: duration_pb2.Duration | None,
        runtime: common_pb2.Runtime | None,
        placement: common_pb2.Placement | None,
    ) -> None:
        request = _with(
            gateway_pb2.RegisterFunctionRequest(name=name, payload=payload),
            timeout=timeout,
            runtime=runtime,
            placement=placement,
        )
        outcome = _checked(
            stored,
            "RegisterFunction",
            request,
            lambda: stub.RegisterFunction(request, timeout=DEADLINE, metadata=caller.metadata),
        )
        seen.add(outcome.code)

    fuzz()
    assert {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT} <= seen, seen


def test_execute_function(
    shared_platform: Platform,
    stub: gateway_pb2_grpc.GatewayServiceStub,
    caller: Credentials,
    stored: StoredRecords,
    known: dict[str, list[str]],
) -> None:
    seen: set[grpc.StatusCode] = set()

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES)
    @given(
        function_id=ids(known["function_id"]),
        payload=payloads(near_limit=True),
        timeout=durations(),
        request_id=st.one_of(st.just(""), st.text(max_size=200)),
        placement=placements(),
    )
    def fuzz(
        function_id: str,
        payload: bytes,
        timeout: duration_pb2.Duration | None,
        request_id: str,
        placement: common_pb2.Placement | None,
    ) -> None:
        request = _with(
            gateway_pb2.ExecuteFunctionRequest(
                function_id=function_id, payload=payload, request_id=request_id
            ),
            timeout=timeout,
            placement=placement,
        )
        outcome = _checked(
            stored,
            "ExecuteFunction",
            request,
            lambda: stub.ExecuteFunction(request, timeout=DEADLINE, metadata=caller.metadata),
        )
        seen.add(outcome.code)

    fuzz()
    assert {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT} <= seen, seen
    _assert_serves_on(shared_platform, caller, known["function_id"][0])


def test_execute_batch(
    shared_platform: Platform,
    stub: gateway_pb2_grpc.GatewayServiceStub,
    caller: Credentials,
    stored: StoredRecords,
    known: dict[str, list[str]],
) -> None:
    seen: set[grpc.StatusCode] = set()

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES)
    @example(  # one valid batch always, whatever the derandomized draws hold
        function_id=known["function_id"][0],
        batch=[dill.dumps(((1,), {})), dill.dumps(((2,), {}))],
        timeout=None,
        request_id="",
        placement=None,
    )
    @given(
        function_id=ids(known["function_id"]),
        batch=st.lists(payloads(near_limit=False), max_size=6),
        timeout=durations(),
        request_id=st.one_of(st.just(""), st.text(max_size=200)),
        placement=placements(),
    )
    def fuzz(
        function_id: str,
        batch: list[bytes],
        timeout: duration_pb2.Duration | None,
        request_id: str,
        placement: common_pb2.Placement | None,
    ) -> None:
        request = _with(
            gateway_pb2.ExecuteBatchRequest(
                function_id=function_id, payloads=batch, request_id=request_id
            ),
            timeout=timeout,
            placement=placement,
        )
        outcome = _checked(
            stored,
            "ExecuteBatch",
            request,
            lambda: stub.ExecuteBatch(request, timeout=DEADLINE, metadata=caller.metadata),
        )
        seen.add(outcome.code)

    fuzz()
    assert {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT} <= seen, seen
    _assert_serves_on(shared_platform, caller, known["function_id"][0])


@pytest.mark.parametrize("method", ["GetStatus", "GetFunction"])
def test_lookups(
    stub: gateway_pb2_grpc.GatewayServiceStub,
    caller: Credentials,
    stored: StoredRecords,
    known: dict[str, list[str]],
    method: str,
) -> None:
    field = "task_id" if method == "GetStatus" else "function_id"
    request_type = getattr(gateway_pb2, f"{method}Request")
    seen: set[grpc.StatusCode] = set()

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES)
    @given(value=ids(known[field]))
    def fuzz(value: str) -> None:
        request = request_type(**{field: value})
        outcome = _checked(
            stored,
            method,
            request,
            lambda: getattr(stub, method)(request, timeout=DEADLINE, metadata=caller.metadata),
        )
        seen.add(outcome.code)

    fuzz()
    assert {grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND} <= seen, seen


def test_get_result(
    stub: gateway_pb2_grpc.GatewayServiceStub,
    caller: Credentials,
    stored: StoredRecords,
    known: dict[str, list[str]],
) -> None:
    seen: set[grpc.StatusCode] = set()

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES)
    @given(task_id=ids(known["task_id"]), wait=durations())
    def fuzz(task_id: str, wait: duration_pb2.Duration | None) -> None:
        request = _with(gateway_pb2.GetResultRequest(task_id=task_id), wait=wait)
        outcome = _checked(
            stored,
            "GetResult",
            request,
            lambda: stub.GetResult(request, timeout=LONG_POLL_DEADLINE, metadata=caller.metadata),
        )
        seen.add(outcome.code)

    fuzz()
    assert {grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND} <= seen, seen


def test_watch_tasks(
    stub: gateway_pb2_grpc.GatewayServiceStub,
    caller: Credentials,
    stored: StoredRecords,
    known: dict[str, list[str]],
) -> None:
    """A stream of requests of random ids ends once the requests have and every known one has
    sent its (terminal) state; unknown ids come back as such, bad ones end it as invalid."""
    seen: set[grpc.StatusCode] = set()

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES)
    @given(batches=st.lists(st.lists(ids(known["task_id"]), max_size=5), max_size=4))
    def fuzz(batches: list[list[str]]) -> None:
        requests = [gateway_pb2.WatchTasksRequest(task_ids=batch) for batch in batches]

        def send() -> list[gateway_pb2.WatchTasksResponse]:
            return list(stub.WatchTasks(iter(requests), timeout=DEADLINE, metadata=caller.metadata))

        outcome = _checked(stored, "WatchTasks", gateway_pb2.WatchTasksRequest(), send)
        seen.add(outcome.code)
        if outcome.code == grpc.StatusCode.OK:
            asked = {task_id for batch in batches for task_id in batch}
            sent = {state.task_id for reply in outcome.response for state in reply.tasks}
            unknown = {i for reply in outcome.response for i in reply.unknown_task_ids}
            assert sent | unknown == asked, (batches, sent, unknown)
            assert sent <= set(known["task_id"])

    fuzz()
    assert {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT} <= seen, seen


def test_list_workers(
    stub: gateway_pb2_grpc.GatewayServiceStub, caller: Credentials, stored: StoredRecords
) -> None:
    request = gateway_pb2.ListWorkersRequest()
    outcome = _checked(
        stored,
        "ListWorkers",
        request,
        lambda: stub.ListWorkers(request, timeout=DEADLINE, metadata=caller.metadata),
    )
    assert outcome.code == grpc.StatusCode.OK
    assert len(outcome.response.workers) >= 1


def test_list_tasks(
    stub: gateway_pb2_grpc.GatewayServiceStub,
    caller: Credentials,
    stored: StoredRecords,
    known: dict[str, list[str]],
) -> None:
    """Filters, page sizes and tokens of every kind: a page no larger than asked (1000 at
    most) of the caller's tasks, or INVALID_ARGUMENT; and a token fed back goes on."""
    seen: set[grpc.StatusCode] = set()
    stamps = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**33))

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES)
    @given(
        page_size=st.one_of(st.integers(-3, 60), st.integers(-(2**31), 2**31 - 1)),
        page_token=st.one_of(st.just(""), st.text(max_size=80)),
        statuses=st.lists(st.integers(0, 7), max_size=4),
        function_id=st.one_of(st.just(""), ids(known["function_id"])),
        worker_id=st.one_of(st.just(""), st.text(max_size=200)),
        after=stamps,
        before=stamps,
    )
    def fuzz(
        page_size: int,
        page_token: str,
        statuses: list[int],
        function_id: str,
        worker_id: str,
        after: int | None,
        before: int | None,
    ) -> None:
        request = gateway_pb2.ListTasksRequest(
            page_size=page_size,
            page_token=page_token,
            statuses=statuses,  # type: ignore[arg-type]
            function_id=function_id,
            worker_id=worker_id,
        )
        if after is not None:
            request.created_after.seconds = after
        if before is not None:
            request.created_before.seconds = before
        outcome = _checked(
            stored,
            "ListTasks",
            request,
            lambda: stub.ListTasks(request, timeout=DEADLINE, metadata=caller.metadata),
        )
        seen.add(outcome.code)
        if outcome.code == grpc.StatusCode.OK:
            tasks = outcome.response.tasks
            assert len(tasks) <= min(page_size or 50, 1000)
            for task in tasks[:3]:  # the caller's own: it reads them too
                stub.GetStatus(
                    gateway_pb2.GetStatusRequest(task_id=task.task_id),
                    timeout=DEADLINE,
                    metadata=caller.metadata,
                )
            if outcome.response.next_page_token:
                request.page_token = outcome.response.next_page_token
                again = stub.ListTasks(request, timeout=DEADLINE, metadata=caller.metadata)
                assert not {t.task_id for t in again.tasks} & {t.task_id for t in tasks}

    fuzz()
    assert {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT} <= seen, seen


def test_list_functions(
    stub: gateway_pb2_grpc.GatewayServiceStub, caller: Credentials, stored: StoredRecords
) -> None:
    seen: set[grpc.StatusCode] = set()

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES)
    @given(page_size=st.integers(-(2**31), 2**31 - 1), page_token=st.text(max_size=80))
    def fuzz(page_size: int, page_token: str) -> None:
        request = gateway_pb2.ListFunctionsRequest(page_size=page_size, page_token=page_token)
        outcome = _checked(
            stored,
            "ListFunctions",
            request,
            lambda: stub.ListFunctions(request, timeout=DEADLINE, metadata=caller.metadata),
        )
        seen.add(outcome.code)

    fuzz()
    assert grpc.StatusCode.INVALID_ARGUMENT in seen, seen


# --- raw bytes: what no well-behaved client sends --------------------------------------------

METHODS = {
    "RegisterFunction": "unary_unary",
    "ExecuteFunction": "unary_unary",
    "ExecuteBatch": "unary_unary",
    "GetStatus": "unary_unary",
    "GetResult": "unary_unary",
    "GetFunction": "unary_unary",
    "ListWorkers": "unary_unary",
    "WatchTask": "unary_stream",
    "WatchTasks": "stream_stream",
    "ListTasks": "unary_unary",
    "ListFunctions": "unary_unary",
    "DeleteFunction": "unary_unary",
    "GetTaskOutput": "unary_unary",
}
METHODS_THAT_STORE = frozenset({"RegisterFunction", "ExecuteFunction", "ExecuteBatch"})


def _invalid_utf8(field: int, junk: bytes) -> bytes:
    """A length-delimited field ``field`` whose bytes are not UTF-8 (a string field's place)."""
    data = b"\xed\xa0" + junk  # a lone surrogate's encoding: never valid UTF-8
    return bytes([field << 3 | 2, len(data)]) + data


def raw_requests() -> st.SearchStrategy[bytes]:
    """Random bytes, and valid requests with a string field of invalid UTF-8 appended."""
    return st.one_of(
        st.binary(max_size=512),
        st.builds(_invalid_utf8, st.integers(1, 5), st.binary(max_size=32)),
        st.builds(
            lambda head, bad: head + bad,
            st.sampled_from(
                [
                    gateway_pb2.ExecuteFunctionRequest(function_id="x").SerializeToString(),
                    gateway_pb2.RegisterFunctionRequest(name="x").SerializeToString(),
                    b"",
                ]
            ),
            st.builds(_invalid_utf8, st.integers(1, 4), st.binary(max_size=8)),
        ),
    )


def test_every_method_is_fuzzed() -> None:
    service = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"]
    assert set(METHODS) == {method.name for method in service.methods}


@pytest.mark.parametrize("method", list(METHODS))
def test_raw_bytes(
    channel: grpc.Channel, caller: Credentials, stored: StoredRecords, method: str
) -> None:
    kind = METHODS[method]
    call = getattr(channel, kind)(
        f"/{SERVICE}/{method}", request_serializer=None, response_deserializer=None
    )

    def send(raw: bytes) -> Any:
        if kind == "unary_unary":
            return call(raw, timeout=DEADLINE, metadata=caller.metadata)
        if kind == "unary_stream":
            return list(call(raw, timeout=DEADLINE, metadata=caller.metadata))
        return list(call(iter([raw]), timeout=DEADLINE, metadata=caller.metadata))

    @settings(FUZZ_SETTINGS, max_examples=RAW_EXAMPLES)
    @given(raw=raw_requests())
    def fuzz(raw: bytes) -> None:
        before = stored.now()
        outcome = _call(lambda: send(raw), f"{method}({raw!r})")
        after = stored.now()
        if outcome.code != grpc.StatusCode.OK or method not in METHODS_THAT_STORE:
            assert after == before, (method, raw, before, after)

    fuzz()
