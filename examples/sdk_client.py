"""MPCSFaaS from the Python SDK: ``FaaSClient`` and the ``FaaSExecutor``.

.venv/bin/python examples/sdk_client.py [HOST:PORT]  # default: $FAAS_TARGET or 127.0.0.1:50051
"""

from __future__ import annotations

import os
import sys

from faas import FaaSClient, FaaSExecutor, TaskNotFound


def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def divide(a: float, b: float) -> float:
    return a / b


def main(target: str) -> None:
    with FaaSClient(target) as client:
        function_id = client.register(fib)
        future = client.submit(function_id, 30)  # a concurrent.futures.Future
        print(f"fib(30) = {future.result(timeout=60)} (task {future.task_id})")
        print(f"map: {list(client.map(function_id, range(10)))}")

        divide_id = client.register(divide)
        try:
            client.submit(divide_id, 1, 0).result(timeout=60)
        except ZeroDivisionError as error:  # the function's own exception, re-raised
            print(f"raised: {type(error).__name__}: {error}")

        task_id = client.execute(divide_id, (10, 4))
        print(f"status: {client.status(task_id)}, result: {client.result(task_id, timeout=60)}")
        try:
            client.status("no-such-task")
        except TaskNotFound as error:
            print(f"error: {error.reason}")
        report = client.workers()
        print(f"workers: {len(report.workers)} ({report.mode} mode)")

    with FaaSExecutor(target) as executor:  # a concurrent.futures.Executor
        print(f"executor map: {list(executor.map(fib, [5, 10, 15]))}")
        futures = [executor.submit(divide, 1, d) for d in (2, 4, 8)]
        print(f"executor submit: {[f.result() for f in futures]}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("FAAS_TARGET", "127.0.0.1:50051"))
