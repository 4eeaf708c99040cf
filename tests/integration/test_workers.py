"""Distributed workers over real processes: load balancing and failures (issue: pull and push)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator, Sequence

import dill
import pytest
from faas.v1 import common_pb2

from services.launcher import Platform
from tests.integration.conftest import PlatformFactory
from tests.support import GrpcClient as Client
from tests.support import wait_until


@pytest.fixture
def client_for() -> Iterator[Callable[[Platform], Client]]:
    clients: list[Client] = []

    def make(platform: Platform) -> Client:
        clients.append(Client(platform))
        return clients[-1]

    yield make
    for c in clients:
        c.channel.close()


def nap(seconds: float) -> int:
    import os
    import time

    time.sleep(seconds)
    return os.getppid()  # the worker agent that ran it


def die() -> None:
    import os

    os._exit(3)


def _two_running_naps(client: Client, seconds: float) -> list[str]:
    """Submits two naps and returns their ids once both are RUNNING."""
    task_ids = client.submit(client.register(nap), [(seconds,)] * 2)
    running = {common_pb2.TASK_STATUS_RUNNING}
    wait_until(lambda: {client.state(t).status for t in task_ids} == running, 10, "both running")
    return task_ids


def _completed(states: Sequence[common_pb2.TaskState]) -> None:
    failed = [s for s in states if s.status != common_pb2.TASK_STATUS_COMPLETED]
    assert not failed, failed[:3]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["push", "pull"])
def test_equal_workers_share_the_load(
    make_platform: PlatformFactory, client_for: Callable[[Platform], Client], mode: str
) -> None:
    """Equal workers kept busy end equal, when the task, not the host, sets their pace.

    Every worker is fed while work is queued, so each one's share is its drain rate. With 10 ms
    naps the per-task overhead of four agents on a two-core machine (a few ms, varying with
    the OS's scheduling) moved shares by up to 25% in runs where every worker was busy from the
    first task to the last; 50 ms naps make the equal workers equal.
    """
    platform = make_platform(mode=mode, workers=4, worker_processes=1)
    client = client_for(platform)
    function_id = client.register(nap)
    states = client.wait_all(client.submit(function_id, [(0.05,)] * 320))
    _completed(states)
    counts = [w.completed for w in client.workers().values()]
    assert sum(counts) == 320 and len(counts) == 4
    mean = 80
    assert all(abs(c - mean) <= 0.15 * mean for c in counts), counts


@pytest.mark.slow
def test_shares_follow_capacity(
    make_platform: PlatformFactory, client_for: Callable[[Platform], Client]
) -> None:
    platform = make_platform(mode="push", workers=0)
    small = platform.add_worker(1)
    big = platform.add_worker(3)
    client = client_for(platform)
    states = client.wait_all(client.submit(client.register(nap), [(0.05,)] * 200))
    _completed(states)
    workers = client.workers()
    share_big = workers[big.name].completed / 200
    assert workers[small.name].completed + workers[big.name].completed == 200
    assert 0.65 <= share_big <= 0.85, (workers[small.name].completed, workers[big.name].completed)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["push", "pull", "local"])
def test_makespan_of_sleep_tasks_is_near_ideal(
    make_platform: PlatformFactory, client_for: Callable[[Platform], Client], mode: str
) -> None:
    platform = make_platform(mode=mode, workers=1, worker_processes=4)
    client = client_for(platform)
    function_id = client.register(nap)
    client.wait_all(client.submit(function_id, [(0.0,)] * 8))  # warm the function caches
    started = time.monotonic()
    states = client.wait_all(client.submit(function_id, [(0.2,)] * 40))
    makespan = time.monotonic() - started
    _completed(states)
    ideal = 40 * 0.2 / 4
    print(f"{mode}: makespan {makespan:.3f}s, ideal {ideal:.1f}s, ratio {makespan / ideal:.3f}")
    assert makespan / ideal <= 1.25


@pytest.mark.fault
def test_killed_worker_tasks_finish_elsewhere(
    make_platform: PlatformFactory, client_for: Callable[[Platform], Client]
) -> None:
    platform = make_platform(mode="push", workers=2, worker_processes=2)
    client = client_for(platform)
    victim, survivor = platform.workers
    task_ids = client.submit(client.register(nap), [(1.0,)] * 8)
    running = common_pb2.TASK_STATUS_RUNNING

    def started_on_victim() -> bool:  # started, not only prefetched (those carry no attempt)
        states = [client.state(t) for t in task_ids]
        return any(s.status == running and s.worker_id == victim.name for s in states)

    wait_until(started_on_victim, 10, "a task started on the victim")
    victim.kill()
    states = client.wait_all(task_ids)
    _completed(states)
    assert {s.attempts for s in states} >= {2}, "no task was reassigned"
    assert {dill.loads(s.result) for s in states if s.attempts >= 2} == {survivor.pid}


@pytest.mark.fault
def test_with_no_workers_tasks_wait_then_run(
    make_platform: PlatformFactory, client_for: Callable[[Platform], Client]
) -> None:
    platform = make_platform(mode="push", workers=1, worker_processes=1)
    client = client_for(platform)
    function_id = client.register(nap)
    platform.workers[0].kill()
    wait_until(lambda: not client.workers(), 10, "the killed worker to be dropped")
    task_ids = client.submit(function_id, [(0.0,)] * 10)
    time.sleep(1.0)  # give a wrong dispatcher the chance to fail or lose them
    assert {client.state(t).status for t in task_ids} == {common_pb2.TASK_STATUS_QUEUED}
    platform.add_worker(2)
    _completed(client.wait_all(task_ids))


@pytest.mark.fault
def test_frozen_worker_is_detected_by_heartbeat_and_its_late_result_ignored(
    make_platform: PlatformFactory, client_for: Callable[[Platform], Client]
) -> None:
    platform = make_platform(mode="push", workers=1, worker_processes=1, heartbeat_seconds=0.5)
    client = client_for(platform)
    frozen = platform.workers[0]
    (task_id,) = client.submit(client.register(nap), [(1.0,)])
    wait_until(lambda: client.state(task_id).status == common_pb2.TASK_STATUS_RUNNING, 10, "run")
    frozen.send_signal(signal.SIGSTOP)
    try:
        healthy = platform.add_worker(1)
        (state,) = client.wait_all([task_id], timeout=30)
    finally:
        frozen.send_signal(signal.SIGCONT)
    assert state.status == common_pb2.TASK_STATUS_COMPLETED
    assert state.attempts == 2
    assert dill.loads(state.result) == healthy.pid
    time.sleep(2.0)  # the thawed worker finishes its stale attempt and reports it
    again = client.state(task_id)
    assert dill.loads(again.result) == healthy.pid and again.attempts == 2


@pytest.mark.fault
def test_process_exit_fails_the_task_and_the_worker_serves_on(
    make_platform: PlatformFactory, client_for: Callable[[Platform], Client]
) -> None:
    platform = make_platform(mode="push", workers=1, worker_processes=1)
    client = client_for(platform)

    (state,) = client.wait_all(client.submit(client.register(die), [()]))
    assert state.status == common_pb2.TASK_STATUS_FAILED
    assert state.error.cause == common_pb2.FAILURE_CAUSE_PROCESS_DIED
    assert "exit code 3" in state.error.message
    assert isinstance(dill.loads(state.result), Exception)
    (after,) = client.wait_all(client.submit(client.register(nap), [(0.0,)]))
    assert dill.loads(after.result) == platform.workers[0].pid


@pytest.mark.fault
def test_timeout_kills_the_task_and_the_worker_serves_on(
    make_platform: PlatformFactory, client_for: Callable[[Platform], Client]
) -> None:
    platform = make_platform(mode="push", workers=1, worker_processes=1)
    client = client_for(platform)
    function_id = client.register(nap, timeout=0.5)
    started = time.monotonic()
    (state,) = client.wait_all(client.submit(function_id, [(30.0,)]))
    assert time.monotonic() - started < 20
    assert state.status == common_pb2.TASK_STATUS_FAILED
    assert state.error.cause == common_pb2.FAILURE_CAUSE_TIMEOUT
    assert isinstance(dill.loads(state.result), TimeoutError)
    (after,) = client.wait_all(client.submit(function_id, [(0.0,)]))
    assert after.status == common_pb2.TASK_STATUS_COMPLETED


@pytest.mark.fault
def test_sigterm_drains_a_worker(
    make_platform: PlatformFactory, client_for: Callable[[Platform], Client]
) -> None:
    platform = make_platform(mode="push", workers=1, worker_processes=2)
    client = client_for(platform)
    worker = platform.workers[0]
    task_ids = _two_running_naps(client, 1.0)  # started by its processes, not only assigned
    assert worker.stop(signal.SIGTERM, timeout=30) == 0
    states = [client.state(t) for t in task_ids]
    _completed(states)
    assert all(s.attempts == 1 for s in states)


@pytest.mark.fault
def test_lost_worker_fails_the_task_after_max_attempts(
    make_platform: PlatformFactory, client_for: Callable[[Platform], Client]
) -> None:
    platform = make_platform(
        mode="push", workers=1, worker_processes=1, extra_env={"FAAS_MAX_ATTEMPTS": "1"}
    )
    client = client_for(platform)
    (task_id,) = client.submit(client.register(nap), [(5.0,)])
    wait_until(lambda: client.state(task_id).status == common_pb2.TASK_STATUS_RUNNING, 10, "run")
    platform.workers[0].kill()
    (state,) = client.wait_all([task_id], timeout=30)
    assert state.status == common_pb2.TASK_STATUS_FAILED
    assert state.error.cause == common_pb2.FAILURE_CAUSE_WORKER_LOST
    assert isinstance(dill.loads(state.result), RuntimeError)


def test_each_mode_runs_tasks(
    make_platform: PlatformFactory, client_for: Callable[[Platform], Client]
) -> None:
    for mode in ("local", "pull"):
        platform = make_platform(mode=mode, workers=1, worker_processes=2)
        client = client_for(platform)
        states = client.wait_all(client.submit(client.register(nap), [(0.0,)] * 20))
        _completed(states)
        listed = client.workers()
        assert sum(w.completed for w in listed.values()) == 20
        assert {w.mode for w in listed.values()} == {mode}
        if mode == "local":
            assert {dill.loads(s.result) for s in states} == {platform.dispatcher.pid}
        platform.stop()


@pytest.mark.fault
def test_process_death_is_retried_when_configured(
    make_platform: PlatformFactory, client_for: Callable[[Platform], Client]
) -> None:
    platform = make_platform(
        mode="push",
        workers=1,
        worker_processes=1,
        extra_env={"FAAS_RETRY_PROCESS_DEATH": "1", "FAAS_MAX_ATTEMPTS": "2"},
    )
    client = client_for(platform)

    (state,) = client.wait_all(client.submit(client.register(die), [()]))
    assert state.status == common_pb2.TASK_STATUS_FAILED
    assert state.error.cause == common_pb2.FAILURE_CAUSE_PROCESS_DIED
    assert state.attempts == 2
    assert isinstance(dill.loads(state.result), ChildProcessError)


@pytest.mark.fault
def test_results_finished_while_the_dispatcher_was_down_are_delivered(
    make_platform: PlatformFactory, client_for: Callable[[Platform], Client]
) -> None:
    platform = make_platform(mode="push", workers=1, worker_processes=2)
    client = client_for(platform)
    task_ids = _two_running_naps(client, 1.0)
    platform.dispatcher.kill()
    time.sleep(1.5)  # the tasks finish while there is no dispatcher
    platform.dispatcher.start()
    states = client.wait_all(task_ids)
    _completed(states)
    assert [s.attempts for s in states] == [1, 1]  # kept and delivered, not run again
    assert {dill.loads(s.result) for s in states} == {platform.workers[0].pid}


@pytest.mark.fault
def test_running_tasks_are_kept_across_a_dispatcher_restart(
    make_platform: PlatformFactory, client_for: Callable[[Platform], Client]
) -> None:
    platform = make_platform(mode="pull", workers=1, worker_processes=2)
    client = client_for(platform)
    task_ids = _two_running_naps(client, 3.0)
    platform.dispatcher.kill()
    platform.dispatcher.start()
    worker = platform.workers[0].name
    wait_until(lambda: client.workers().get(worker) is not None, 10, "the worker to reconnect")
    wait_until(lambda: client.workers()[worker].in_flight == 2, 10, "the tasks to be adopted")
    states = client.wait_all(task_ids)
    _completed(states)
    assert [s.attempts for s in states] == [1, 1]
    assert client.workers()[worker].in_flight == 0
