"""The REST floor: a bare FastAPI app with the shim's endpoints and shapes, and nothing behind.

``python -m benchmarks._fastapi_floor --port P`` serves it under uvicorn with the shim's
settings (asyncio loop, same log level), so the shim's figures divided by this app's show
what the gateway, dispatcher and workers add behind the REST layer.
"""

from __future__ import annotations

import argparse
import uuid

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

_NONE_RESULT = "gAROLg==\n"  # base64 of dill.dumps(None)


class ExecuteFunctionBody(BaseModel):
    function_id: str
    payload: str
    timeout: float | None = None
    request_id: str | None = None


class ExecuteFunctionResponse(BaseModel):
    task_id: str


class ExecuteBatchBody(BaseModel):
    function_id: str
    payloads: list[str]
    timeout: float | None = None


class ExecuteBatchResponse(BaseModel):
    task_ids: list[str]


class ResultResponse(BaseModel):
    task_id: str
    status: str
    result: str | None
    error: None = None


def create_app() -> FastAPI:
    app = FastAPI(title="bare FastAPI floor")

    @app.post("/execute_function")
    async def execute_function(body: ExecuteFunctionBody) -> ExecuteFunctionResponse:
        return ExecuteFunctionResponse(task_id=str(uuid.uuid4()))

    @app.post("/execute_batch")
    async def execute_batch(body: ExecuteBatchBody) -> ExecuteBatchResponse:
        return ExecuteBatchResponse(task_ids=[str(uuid.uuid4()) for _ in body.payloads])

    @app.get("/result/{task_id}")
    async def get_result(task_id: str, wait: float | None = None) -> ResultResponse:
        return ResultResponse(task_id=task_id, status="COMPLETED", result=_NONE_RESULT)

    @app.post("/register_function")
    async def register_function() -> dict[str, str]:
        return {"function_id": str(uuid.uuid4())}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="fastapi-floor")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    uvicorn.run(
        create_app(), host=args.host, port=args.port, loop="asyncio", log_level=args.log_level
    )


if __name__ == "__main__":
    main()
