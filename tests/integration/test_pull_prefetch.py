"""Pull mode asks ahead of the processes (issue 11): work queues at each worker, every task
still runs and completes once, the split stays fair, and a killed worker's prefetched tasks
finish elsewhere."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import dill
import pytest
from faas.v1 import common_pb2

from services.launcher import Platform
from tests.integration.conftest import PlatformFactory
from tests.support import GrpcClient, wait_until

PROCESSES = 2


def work(x: int, seconds: float) -> int:
    import time

    time.sleep(seconds)
    return x * x


class InFlight:
    """The most tasks each worker held (running and prefetched), sampled while a test runs."""

    def __init__(self, platform: Platform) -> None:
        self._client = GrpcClient(platform)
        self.most: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            for worker_id, stats in self._client.workers().items():
                self.most[worker_id] = max(self.most[worker_id], stats.in_flight)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        self._client.channel.close()


@pytest.fixture
def platform(make_platform: PlatformFactory) -> Platform:
    return make_platform(mode="pull", workers=2, worker_processes=PROCESSES)


@pytest.fixture
def client(platform: Platform) -> Iterator[GrpcClient]:
    client = GrpcClient(platform)
    yield client
    client.channel.close()


def _submit(client: GrpcClient, function_id: str, count: int, seconds: float) -> list[str]:
    task_ids: list[str] = []
    for start in range(0, count, 500):
        calls = [(x, seconds) for x in range(start, min(start + 500, count))]
        task_ids += client.submit(function_id, calls)
    return task_ids


def _check_results(states: list[common_pb2.TaskState]) -> None:
    wrong = [
        (x, s.status)
        for x, s in enumerate(states)
        if s.status != common_pb2.TASK_STATUS_COMPLETED or dill.loads(s.result) != x * x
    ]
    assert not wrong, wrong[:5]


@pytest.mark.slow
def test_pull_workers_hold_work_ahead_and_run_every_task(
    platform: Platform, client: GrpcClient
) -> None:
    function_id = client.register(work)
    sampler = InFlight(platform)
    try:
        states = client.wait_all(_submit(client, function_id, 2000, 0.002), timeout=240)
    finally:
        sampler.close()
    _check_results(states)
    finishers = Counter(s.worker_id for s in states)
    workers = client.workers()
    assert set(finishers) == set(workers) and len(workers) == 2
    # Each outcome counted once, by the worker the task's record names.
    assert {w: stats.completed for w, stats in workers.items()} == dict(finishers)
    shares = sorted(n / len(states) for n in finishers.values())
    assert 0.35 <= shares[0] <= shares[1] <= 0.65, finishers
    # Each worker held more than its processes could run: tasks waited at it, prefetched.
    assert all(sampler.most[w] > PROCESSES for w in workers), sampler.most


@pytest.mark.fault
def test_killed_pull_worker_prefetched_tasks_finish_elsewhere(
    platform: Platform, client: GrpcClient
) -> None:
    victim, survivor = platform.workers
    function_id = client.register(work)
    task_ids = _submit(client, function_id, 300, 0.05)

    def victim_holds_prefetched() -> bool:  # more than its processes run: some wait at it
        stats = client.workers().get(victim.name)
        return stats is not None and stats.in_flight > PROCESSES

    wait_until(victim_holds_prefetched, 60, "the victim to hold prefetched tasks")
    victim.kill()
    states = client.wait_all(task_ids, timeout=240)
    _check_results(states)
    finishers = Counter(s.worker_id for s in states)
    assert set(finishers) <= {victim.name, survivor.name}
    assert finishers[survivor.name] > 0
    # The survivor completed each of its tasks once, and none that the victim's record names.
    assert client.workers()[survivor.name].completed == finishers[survivor.name]
    assert sum(finishers.values()) == len(task_ids)
    wait_until(lambda: victim.name not in client.workers(), 30, "the victim to be dropped")
