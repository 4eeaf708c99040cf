"""A Redis hang (SIGSTOP, then SIGCONT) must not strand a task (issue 9).

Two workers of two processes run twelve two-second tasks; Redis is frozen for 7 s while they
run, so outcomes and new attempts meet a store that times out. Afterwards every task must end
COMPLETED with its own result within a bounded time: none lost, stranded or wrong.
"""

from __future__ import annotations

import time

import pytest
from faas.v1 import common_pb2

from tests.faults import Ledger, Probe, frozen, stored_view
from tests.integration.conftest import PlatformFactory
from tests.support import GrpcClient, wait_until

pytestmark = [pytest.mark.fault, pytest.mark.slow]

TASKS = 12
HANG_SECONDS = 7.0
SETTLE_SECONDS = 90.0


def nap_square(x: int) -> int:
    import time

    time.sleep(2)
    return x * x


def running(ledger: Ledger, probe: Probe, task_ids: list[str]) -> int:
    states = [probe.read(task_id) for task_id in task_ids]
    for task_id, state in zip(task_ids, states, strict=True):
        ledger.observe(task_id, state)
    return sum(1 for s in states if s is not None and s.status == common_pb2.TASK_STATUS_RUNNING)


# The hang begins at different points of the first wave of four tasks (each takes 2 s).
@pytest.mark.parametrize("offset", [0.2, 1.0, 1.8], ids=["early", "middle", "late"])
def test_a_redis_hang_strands_no_task(make_platform: PlatformFactory, offset: float) -> None:
    platform = make_platform(mode="push", workers=2, worker_processes=2)
    assert platform.redis is not None and platform.redis.process is not None
    client = GrpcClient(platform)
    probe = Probe(platform.gateway_target)
    ledger = Ledger()
    try:
        function_id = client.register(nap_square)
        inputs = list(range(TASKS))
        task_ids = client.submit(function_id, [(x,) for x in inputs])
        for task_id, x in zip(task_ids, inputs, strict=True):
            ledger.acknowledge(task_id, x * x, "grpc")
        wait_until(lambda: running(ledger, probe, task_ids) >= 4, 30, "four tasks RUNNING")
        time.sleep(offset)  # place the hang within the first wave
        with frozen(platform.redis.process.pid, HANG_SECONDS):
            pass
        took = ledger.settle(probe, SETTLE_SECONDS)
        ledger.final_pass(probe)
        tally = ledger.tally()
    finally:
        probe.close()
        client.channel.close()
    print(f"redis hang at +{offset}s for {HANG_SECONDS}s: settled in {took:.1f}s; {tally.report()}")
    for line in stored_view(platform.redis_url, tally.stranded):
        print(f"  stranded in Redis: {line}")
    assert tally.clean, tally.report()
    assert tally.completed == TASKS
