"""Workers keep function bodies within a byte budget (issue 11): with a budget far smaller than
the functions in use, every task still gets its function, because the dispatcher sends again
each body the worker's cache dropped (both apply the same rule, services/common/function_cache)."""

from __future__ import annotations

from collections.abc import Callable

import dill
import pytest
from faas.v1 import common_pb2

from tests.integration.conftest import PlatformFactory
from tests.support import GrpcClient

BODY_BYTES = 20_000
BUDGET = 64 * 1024  # about three of the functions below


def _tagged(tag: int) -> Callable[[int], tuple[int, int, str]]:
    blob = f"{tag:04d}" * (BODY_BYTES // 4)  # pickled with the closure: a body of ~20 KB

    def f(x: int) -> tuple[int, int, str]:
        return x, len(blob), blob[:4]

    return f


@pytest.mark.parametrize("mode", ["push", "local"])
def test_tasks_of_many_functions_run_right_past_the_body_budget(
    make_platform: PlatformFactory, mode: str
) -> None:
    platform = make_platform(
        mode=mode, worker_processes=2, extra_env={"FAAS_FUNCTION_CACHE_BYTES": str(BUDGET)}
    )
    client = GrpcClient(platform)
    try:
        functions = [client.register(_tagged(tag)) for tag in range(12)]
        assert len(dill.dumps(_tagged(0))) > BODY_BYTES  # each body alone is a third of it
        # Round after round over all twelve: each round needs bodies the last one dropped.
        task_ids: list[str] = []
        expected: list[tuple[int, int, str]] = []
        for round_ in range(4):
            for tag, function_id in enumerate(functions):
                xs = [(round_ * 100 + tag * 5 + i,) for i in range(5)]
                task_ids += client.submit(function_id, xs)
                expected += [(x, BODY_BYTES, f"{tag:04d}") for (x,) in xs]
        states = client.wait_all(task_ids, timeout=180)
        wrong = [
            (s.status, s.error.message)
            for s, want in zip(states, expected, strict=True)
            if s.status != common_pb2.TASK_STATUS_COMPLETED or dill.loads(s.result) != want
        ]
        assert not wrong, wrong[:3]
    finally:
        client.channel.close()
