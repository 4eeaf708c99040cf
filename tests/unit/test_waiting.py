"""Why a task waits (services/gateway/waiting.py): each reason from a record and the
dispatcher's last report, with no Redis."""

from __future__ import annotations

from faas.v1 import common_pb2, gateway_pb2

from services.common.store import Presence, TaskRecord
from services.gateway.waiting import apply, explain

NOW = 1_000_000


def _record(status: str, **fields: object) -> TaskRecord:
    values: dict[str, object] = {
        "task_id": "t",
        "function_id": "f",
        "status": status,
        "result": b"",
        "cause": "",
        "message": "",
        "traceback": "",
        "attempts": 0,
        "worker_id": "",
        "created_ms": NOW - 5000,
        "started_ms": 0,
        "finished_ms": 0,
    }
    values.update(fields)
    return TaskRecord(**values)  # type: ignore[arg-type]


def _report(**fields: object) -> Presence:
    values: dict[str, object] = {"updated_ms": NOW - 200, "workers": 1, "slots": 4, "free": 0}
    values.update(fields)
    return Presence(**values)  # type: ignore[arg-type]


def test_queued_reasons() -> None:
    queued = _record("QUEUED")
    busy = explain(queued, _report(), NOW)
    assert busy is not None and busy.reason == common_pb2.WAIT_REASON_WORKERS_BUSY
    assert busy.message == "every worker is busy (4 of 4 processes)"
    assert busy.since_ms == NOW - 5000
    none = explain(queued, _report(workers=0, slots=0), NOW)
    assert none is not None and none.reason == common_pb2.WAIT_REASON_NO_WORKERS
    label = explain(_record("QUEUED", pending_reason="no worker has gpu"), _report(), NOW)
    assert label is not None and label.reason == common_pb2.WAIT_REASON_NO_MATCHING_WORKER
    assert label.message == "no worker has gpu"
    # The dispatcher records a reason with no worker connected too: no workers comes first.
    alone = _record("QUEUED", pending_reason="no worker is connected")
    unmatched = explain(alone, _report(workers=0, slots=0), NOW)
    assert unmatched is not None and unmatched.reason == common_pb2.WAIT_REASON_NO_WORKERS
    for report in (Presence(), _report(updated_ms=NOW - 60_000)):
        silent = explain(queued, report, NOW)
        assert silent is not None and silent.reason == common_pb2.WAIT_REASON_DISPATCHER_SILENT


def test_a_requeued_task_waits_since_it_was_requeued() -> None:
    wait = explain(_record("QUEUED", requeued_ms=NOW - 100), _report(), NOW)
    assert wait is not None and wait.since_ms == NOW - 100


def test_running_reasons() -> None:
    running = _record("RUNNING", worker_id="w1", started_ms=NOW - 3000)
    fresh = explain(running, _report(heartbeats={"w1": NOW - 400}), NOW)
    assert fresh is not None and fresh.reason == common_pb2.WAIT_REASON_RUNNING
    assert (fresh.worker_id, fresh.heartbeat_age_ms, fresh.since_ms) == ("w1", 400, NOW - 3000)
    late = explain(running, _report(heartbeats={"w1": NOW - 10_000}), NOW)
    assert late is not None and late.reason == common_pb2.WAIT_REASON_WORKER_SILENT
    assert late.heartbeat_age_ms == 10_000
    gone = explain(running, _report(), NOW)
    assert gone is not None and gone.reason == common_pb2.WAIT_REASON_WORKER_SILENT
    assert gone.heartbeat_age_ms is None
    # A report made before the task started cannot know a worker that joined since.
    joined = _record("RUNNING", worker_id="w2", started_ms=NOW - 100)
    new = explain(joined, _report(updated_ms=NOW - 300), NOW)
    assert new is not None and new.reason == common_pb2.WAIT_REASON_RUNNING
    assert (new.worker_id, new.heartbeat_age_ms) == ("w2", 100)  # heard from at its start
    after = explain(joined, _report(updated_ms=NOW - 50), NOW)
    assert after is not None and after.reason == common_pb2.WAIT_REASON_WORKER_SILENT


def test_ended_tasks_say_nothing_and_apply_sets_the_fields() -> None:
    assert explain(_record("COMPLETED"), _report(), NOW) is None
    wait = explain(
        _record("RUNNING", worker_id="w1", started_ms=NOW), _report(heartbeats={"w1": NOW}), NOW
    )
    reply = gateway_pb2.GetStatusResponse()
    apply(wait, reply)
    assert reply.wait_reason == common_pb2.WAIT_REASON_RUNNING and reply.worker_id == "w1"
    assert reply.wait_since.ToMilliseconds() == NOW and reply.HasField("heartbeat_age")
    state = common_pb2.TaskState()
    apply(None, state)
    assert state.wait_reason == common_pb2.WAIT_REASON_UNSPECIFIED
