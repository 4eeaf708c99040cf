"""ListTasks, ListFunctions and DeleteFunction: request checks, page tokens and the store calls.

Every listing is the caller's tenant's only; an open gateway (no API keys) lists the ``default``
tenant, the one it stores everything as. A listing reads at most ``EXAMINE_FACTOR`` times its
page size of records per call, so a filter that matches little answers a short page with a
next_page_token instead of scanning (AIP-158 allows short pages). Tasks are listed without
their results (GetResult reads one).
"""

from __future__ import annotations

import grpc
from faas.v1 import gateway_pb2
from google.protobuf import timestamp_pb2

from services.common.errors import FaaSError, InvalidArgument, NotFound
from services.common.store import (
    STATUS_VALUES,
    FunctionRecord,
    TaskFilter,
    TaskStore,
    task_state,
)

from .limits import MAX_ID_CHARS
from .pagination import decode_token, encode_token, page_size

__all__ = ["EXAMINE_FACTOR", "FailedPrecondition", "Listings"]

# How many records a listing call may read per item of its page.
EXAMINE_FACTOR = 10
_STATUS_NAMES = {value: name for name, value in STATUS_VALUES.items()}


class FailedPrecondition(FaaSError):
    code = grpc.StatusCode.FAILED_PRECONDITION


def _optional_id(value: str, what: str) -> str:
    if len(value) > MAX_ID_CHARS:
        raise InvalidArgument(f"{what} is longer than {MAX_ID_CHARS} characters", "INVALID_ID")
    return value


def _ms(stamp: timestamp_pb2.Timestamp, what: str) -> int:
    if not 0 <= stamp.nanos < 1_000_000_000 or abs(stamp.seconds) > 253_402_300_799:
        raise InvalidArgument(f"{what} is not a valid Timestamp", "INVALID_TIMESTAMP")
    return stamp.seconds * 1000 + stamp.nanos // 1_000_000


def task_filter(request: gateway_pb2.ListTasksRequest) -> TaskFilter:
    """The filters of a ListTasks request, checked (INVALID_ARGUMENT)."""
    statuses = set()
    for value in request.statuses:
        name = _STATUS_NAMES.get(value)
        if name is None:
            raise InvalidArgument(
                f"statuses holds {value}, not a task status (QUEUED, RUNNING, COMPLETED, FAILED)",
                "INVALID_STATUS",
            )
        statuses.add(name)
    return TaskFilter(
        statuses=frozenset(statuses),
        function_id=_optional_id(request.function_id, "function_id"),
        worker_id=_optional_id(request.worker_id, "worker_id"),
        created_after_ms=(
            _ms(request.created_after, "created_after")
            if request.HasField("created_after")
            else None
        ),
        created_before_ms=(
            _ms(request.created_before, "created_before")
            if request.HasField("created_before")
            else None
        ),
    )


def _query(filters: TaskFilter) -> str:
    """What a page token is bound to: the listing and its filters, canonically."""
    return repr(
        (
            "tasks",
            sorted(filters.statuses),
            filters.function_id,
            filters.worker_id,
            filters.created_after_ms,
            filters.created_before_ms,
        )
    )


class Listings:
    """The three calls over the store, for one caller's tenant (``scope`` None: an open
    gateway's, which may read a function of any tenant, as its other reads do)."""

    def __init__(self, store: TaskStore) -> None:
        self._store = store

    async def list_tasks(
        self, request: gateway_pb2.ListTasksRequest, tenant: str, scope: str | None
    ) -> gateway_pb2.ListTasksResponse:
        size = page_size(request.page_size)
        filters = task_filter(request)
        query = _query(filters)
        cursor = decode_token(request.page_token, query)
        page = await self._store.list_tasks(
            tenant,
            filters,
            page_size=size,
            budget=EXAMINE_FACTOR * size,
            cursor=cursor,
            scope=scope,
        )
        return gateway_pb2.ListTasksResponse(
            tasks=[task_state(record) for record in page.items],
            next_page_token=encode_token(page.cursor, query),
        )

    async def functions_page(
        self, request: gateway_pb2.ListFunctionsRequest, tenant: str
    ) -> tuple[list[FunctionRecord], str]:
        """The records of a page of functions, and its next_page_token."""
        size = page_size(request.page_size)
        cursor = decode_token(request.page_token, "functions")
        page = await self._store.list_functions(
            tenant, page_size=size, budget=EXAMINE_FACTOR * size, cursor=cursor
        )
        return page.items, encode_token(page.cursor, "functions")

    async def delete_function(
        self, request: gateway_pb2.DeleteFunctionRequest, scope: str | None
    ) -> gateway_pb2.DeleteFunctionResponse:
        function_id = request.function_id
        if not function_id or len(function_id) > MAX_ID_CHARS:
            raise InvalidArgument(
                f"function_id is required (at most {MAX_ID_CHARS} characters)", "INVALID_ID"
            )
        open_tasks = await self._store.delete_function(function_id, scope)
        if open_tasks is None:
            raise NotFound(
                f"function {function_id!r} not found", "FUNCTION_NOT_FOUND", function_id=function_id
            )
        if open_tasks:
            raise FailedPrecondition(
                f"function {function_id!r} has {open_tasks} QUEUED or RUNNING task(s): delete it "
                "once they end",
                "FUNCTION_HAS_OPEN_TASKS",
                function_id=function_id,
                open_tasks=str(open_tasks),
            )
        return gateway_pb2.DeleteFunctionResponse()
