"""GET /tasks, GET /functions and DELETE /functions/{function_id}: the gateway's ListTasks,
ListFunctions and DeleteFunction over REST.

No ``from __future__ import annotations`` here: FastAPI reads the endpoint annotations at run
time.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import grpc
from faas.v1 import common_pb2, gateway_pb2
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from google.protobuf import timestamp_pb2
from pydantic import BaseModel, Field

from services.gateway.limits import MAX_ID_CHARS
from services.gateway.rest._client import GatewayClient
from services.gateway.rest._convert import function_body, result_body
from services.gateway.rest._models import FunctionResponse, ResultResponse

__all__ = ["listings_router"]

_STATUSES = ("QUEUED", "RUNNING", "COMPLETED", "FAILED")


class ListedTask(ResultResponse):
    """A task as listed: its status, ids, times and error, never its result (null)."""

    function_id: str
    worker_id: str = Field(description="The worker of its current or last attempt.")
    attempts: int
    created_time: str | None = Field(description="When it was submitted (RFC 3339, UTC).")
    started_time: str | None
    finished_time: str | None


class TasksResponse(BaseModel):
    """Answer of ``GET /tasks``: newest first."""

    tasks: list[ListedTask]
    next_page_token: str = Field(description='Pass as page_token for the next page; "": last.')


class FunctionsResponse(BaseModel):
    """Answer of ``GET /functions``: newest first, each with its counts."""

    functions: list[FunctionResponse]
    next_page_token: str = Field(description='Pass as page_token for the next page; "": last.')


class DeletedResponse(BaseModel):
    """Answer of ``DELETE /functions/{function_id}``."""

    function_id: str
    deleted: bool


def _time(task: common_pb2.TaskState, name: str) -> str | None:
    if not task.HasField(name):  # type: ignore[arg-type]
        return None
    stamp: timestamp_pb2.Timestamp = getattr(task, name)
    return stamp.ToDatetime(tzinfo=UTC).isoformat()


def _listed(task: common_pb2.TaskState) -> ListedTask:
    body = result_body(task).model_dump()
    body["result"] = None  # listings never carry results
    return ListedTask(
        **body,
        function_id=task.function_id,
        worker_id=task.worker_id,
        attempts=task.attempts,
        created_time=_time(task, "created_time"),
        started_time=_time(task, "started_time"),
        finished_time=_time(task, "finished_time"),
    )


def _stamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    stamp = timestamp_pb2.Timestamp()
    try:
        stamp.FromDatetime(moment)
    except (ValueError, OverflowError) as exc:
        raise HTTPException(status_code=400, detail=f"a time bound is out of range: {exc}") from exc
    return stamp


_PageSize = Annotated[
    int,
    Query(ge=0, le=2**31 - 1, description="At most this many (0: 50; over 1000 counts as 1000)."),
]
_PageToken = Annotated[
    str, Query(max_length=1024, description="next_page_token of the previous page.")
]
_Id = Annotated[str, Query(max_length=MAX_ID_CHARS)]


_PAGE_PARAMETERS = frozenset({"page_size", "page_token"})
_TASK_PARAMETERS = _PAGE_PARAMETERS | {
    "status",
    "function_id",
    "worker_id",
    "created_after",
    "created_before",
}


def _known_parameters(request: Request, known: frozenset[str]) -> None:
    """A misspelt filter (``?statuses=FAILED``) is a 400, not a listing of everything."""
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise HTTPException(
            status_code=400,
            detail=f"unknown query parameter(s): {', '.join(map(repr, unknown))} (known: "
            f"{', '.join(sorted(known))})",
        )


def listings_router(
    gateway_dependency: Callable[..., Any],
    key_dependency: Callable[..., Any],
    errors: dict[int | str, dict[str, Any]],
) -> APIRouter:
    """The router, given the app's Gateway and ApiKey dependencies and its error responses."""
    router = APIRouter()

    @router.get(
        "/tasks",
        summary="List the caller's tasks, newest first, filtered and paginated (no results)",
        responses=errors,
    )
    async def list_tasks(
        http: Request,
        gateway: Annotated[GatewayClient, Depends(gateway_dependency)],
        key: Annotated[str | None, Depends(key_dependency)],
        status: Annotated[
            list[str] | None,
            Query(description="Repeat for several: QUEUED, RUNNING, COMPLETED, FAILED."),
        ] = None,
        function_id: _Id = "",
        worker_id: _Id = "",
        created_after: Annotated[
            datetime | None, Query(description="Created at or after (RFC 3339).")
        ] = None,
        created_before: Annotated[
            datetime | None, Query(description="Created before (RFC 3339).")
        ] = None,
        page_size: _PageSize = 0,
        page_token: _PageToken = "",
    ) -> TasksResponse:
        _known_parameters(http, _TASK_PARAMETERS)
        request = gateway_pb2.ListTasksRequest(
            page_size=min(page_size, 1000),
            page_token=page_token,
            function_id=function_id,
            worker_id=worker_id,
        )
        for name in status or []:
            if name.upper() not in _STATUSES:
                raise HTTPException(
                    status_code=400,
                    detail=f"status {name!r} is not one of {', '.join(_STATUSES)}",
                )
            request.statuses.append(common_pb2.TaskStatus.Value(f"TASK_STATUS_{name.upper()}"))
        for field, moment in (("created_after", created_after), ("created_before", created_before)):
            stamp = _stamp(moment)
            if stamp is not None:
                getattr(request, field).CopyFrom(stamp)
        response = await gateway.list_tasks(request, key=key)
        return TasksResponse(
            tasks=[_listed(task) for task in response.tasks],
            next_page_token=response.next_page_token,
        )

    @router.get(
        "/functions",
        summary="List the caller's functions, newest first, paginated, with their counts",
        responses=errors,
    )
    async def list_functions(
        http: Request,
        gateway: Annotated[GatewayClient, Depends(gateway_dependency)],
        key: Annotated[str | None, Depends(key_dependency)],
        page_size: _PageSize = 0,
        page_token: _PageToken = "",
    ) -> FunctionsResponse:
        _known_parameters(http, _PAGE_PARAMETERS)
        request = gateway_pb2.ListFunctionsRequest(
            page_size=min(page_size, 1000), page_token=page_token
        )
        response = await gateway.list_functions(request, key=key)
        return FunctionsResponse(
            functions=[function_body(info) for info in response.functions],
            next_page_token=response.next_page_token,
        )

    @router.delete(
        "/functions/{function_id}",
        summary="Delete a function (refused, 409, while it has QUEUED or RUNNING tasks)",
        responses={
            **errors,
            409: {
                "description": "The function has QUEUED or RUNNING tasks",
                "content": {"application/json": {"example": {"detail": "..."}}},
            },
        },
    )
    async def delete_function(
        function_id: Annotated[
            str, Path(json_schema_extra={"minLength": 1, "maxLength": MAX_ID_CHARS})
        ],
        gateway: Annotated[GatewayClient, Depends(gateway_dependency)],
        key: Annotated[str | None, Depends(key_dependency)],
    ) -> DeletedResponse:
        try:
            await gateway.delete_function(function_id, key=key)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise HTTPException(status_code=409, detail=error.details()) from None
            raise
        return DeletedResponse(function_id=function_id, deleted=True)

    return router
