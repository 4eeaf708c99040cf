"""MPCSFaaS client: the generated ``faas.v1`` stubs and a small SDK on top of them.

    from faas import FaaSClient, FaaSExecutor

    with FaaSClient("127.0.0.1:50051") as client:
        function_id = client.register(pow)
        print(client.submit(function_id, 2, 10).result())   # 1024

    with FaaSExecutor("127.0.0.1:50051") as executor:
        print(list(executor.map(abs, [-1, -2])))             # [1, 2]

The SDK is imported lazily, so ``from faas.v1 import gateway_pb2`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._futures import TaskFuture
    from ._models import (
        FunctionCounts,
        FunctionInfo,
        FunctionPage,
        PlacementInfo,
        RuntimeInfo,
        TaskInfo,
        TaskOutput,
        TaskPage,
        TaskStatus,
        WaitInfo,
        WorkerInfo,
        WorkersReport,
    )
    from .client import FaaSClient
    from .errors import (
        AuthenticationError,
        ClientClosed,
        FaaSError,
        FaaSTimeout,
        FunctionNotFound,
        InvalidArgument,
        NotFound,
        PayloadTooLarge,
        QuotaExceeded,
        ServiceUnavailable,
        TaskFailed,
        TaskNotFound,
    )
    from .executor import FaaSExecutor

__all__ = [
    "AuthenticationError",
    "ClientClosed",
    "FaaSClient",
    "FaaSError",
    "FaaSExecutor",
    "FaaSTimeout",
    "FunctionCounts",
    "FunctionInfo",
    "FunctionNotFound",
    "FunctionPage",
    "InvalidArgument",
    "NotFound",
    "PayloadTooLarge",
    "PlacementInfo",
    "QuotaExceeded",
    "RuntimeInfo",
    "ServiceUnavailable",
    "TaskFailed",
    "TaskFuture",
    "TaskInfo",
    "TaskNotFound",
    "TaskOutput",
    "TaskPage",
    "TaskStatus",
    "WaitInfo",
    "WorkerInfo",
    "WorkersReport",
]

_HOMES = {
    "FaaSClient": ".client",
    "FaaSExecutor": ".executor",
    "TaskFuture": "._futures",
    "FunctionCounts": "._models",
    "FunctionInfo": "._models",
    "FunctionPage": "._models",
    "TaskPage": "._models",
    "PlacementInfo": "._models",
    "RuntimeInfo": "._models",
    "TaskInfo": "._models",
    "TaskStatus": "._models",
    "TaskOutput": "._models",
    "WaitInfo": "._models",
    "WorkerInfo": "._models",
    "WorkersReport": "._models",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'faas' has no attribute {name!r}")
    module = importlib.import_module(_HOMES.get(name, ".errors"), __name__)
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
