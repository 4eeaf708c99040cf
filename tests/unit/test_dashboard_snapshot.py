"""Unit tests of the dashboard's snapshot (services/gateway/rest/_ui_snapshot.py): rows, ages,
the queue's oldest task, the throughput bars, and a snapshot with parts missing. Pure: no
network, fixed clocks."""

from __future__ import annotations

import json

from faas.v1 import common_pb2, gateway_pb2
from google.protobuf import duration_pb2, timestamp_pb2

from services.gateway.rest._ui_snapshot import (
    BUCKET_SECONDS,
    BUCKETS,
    Parts,
    Throughput,
    build_snapshot,
    function_row,
    queue_info,
    task_row,
    worker_row,
)

NOW = 1_000_000.0


def _at(seconds: float) -> timestamp_pb2.Timestamp:
    whole = int(seconds)
    return timestamp_pb2.Timestamp(seconds=whole, nanos=round((seconds - whole) * 1e9))


def _worker(
    worker_id: str, completed: int = 0, failed: int = 0, **extra: object
) -> common_pb2.WorkerStats:
    return common_pb2.WorkerStats(
        worker_id=worker_id, completed=completed, failed=failed, capacity=2, **extra
    )


def test_a_finished_task_has_its_queue_wait_run_time_and_total() -> None:
    task = common_pb2.TaskState(
        task_id="t1",
        function_id="f1",
        status=common_pb2.TASK_STATUS_COMPLETED,
        attempts=1,
        worker_id="w1",
        created_time=_at(NOW - 10),
        started_time=_at(NOW - 7.5),
        finished_time=_at(NOW - 2),
    )
    row = task_row(task, NOW, {"f1": "double"})
    assert row["function"] == "double"
    assert row["status"] == "COMPLETED"
    assert (row["queue_wait"], row["run_time"], row["total"], row["age"]) == (2.5, 5.5, 8.0, 10.0)
    assert (row["cause"], row["message"], row["wait_reason"]) == ("", "", "")


def test_a_running_task_counts_its_run_time_up_to_now_and_says_why() -> None:
    task = common_pb2.TaskState(
        task_id="t1",
        status=common_pb2.TASK_STATUS_RUNNING,
        created_time=_at(NOW - 3),
        started_time=_at(NOW - 1),
        wait_reason=common_pb2.WAIT_REASON_WORKER_SILENT,
        wait_since=_at(NOW - 0.5),
        wait_message="worker w1 last sent a heartbeat 12 s ago",
    )
    row = task_row(task, NOW, {})
    assert (row["queue_wait"], row["run_time"], row["total"]) == (2.0, 1.0, None)
    assert row["function"] == ""  # no listing of functions: the page shows the id
    assert row["wait_reason"] == "WORKER_SILENT"
    assert row["wait_message"] == "worker w1 last sent a heartbeat 12 s ago"
    assert row["wait_for"] == 0.5


def test_a_queued_task_waits_until_now_and_a_failed_one_names_its_cause() -> None:
    queued = task_row(
        common_pb2.TaskState(
            status=common_pb2.TASK_STATUS_QUEUED,
            created_time=_at(NOW - 4),
            pending_reason="no connected worker has label gpu=h200",
        ),
        NOW,
        {},
    )
    assert (queued["queue_wait"], queued["run_time"]) == (4.0, None)
    assert queued["wait_message"] == "no connected worker has label gpu=h200"
    failed = task_row(
        common_pb2.TaskState(
            status=common_pb2.TASK_STATUS_FAILED,
            created_time=_at(NOW - 4),
            finished_time=_at(NOW - 1),  # never started: no worker could take it
            error=common_pb2.TaskError(
                cause=common_pb2.FAILURE_CAUSE_NO_COMPATIBLE_WORKER,
                message="no worker",
                traceback="Traceback ...",
            ),
        ),
        NOW,
        {},
    )
    assert (failed["queue_wait"], failed["run_time"], failed["total"]) == (3.0, None, 3.0)
    assert (failed["cause"], failed["message"]) == ("NO_COMPATIBLE_WORKER", "no worker")
    assert "traceback" not in failed  # read on click from /result, not sent every second


def test_a_worker_row_has_its_heartbeat_age_only_when_reported() -> None:
    stats = _worker(
        "w1",
        completed=3,
        in_flight=1,
        connected_time=_at(NOW - 60),
        heartbeat_age=duration_pb2.Duration(seconds=1, nanos=250_000_000),
    )
    row = worker_row(stats, NOW)
    assert (row["capacity"], row["in_flight"], row["completed"]) == (2, 1, 3)
    assert (row["heartbeat_age"], row["connected_age"]) == (1.25, 60.0)
    silent = worker_row(_worker("w2"), NOW)
    assert (silent["heartbeat_age"], silent["connected_age"]) == (None, None)


def test_a_function_row_has_its_counts_and_what_is_in_progress() -> None:
    function = common_pb2.FunctionInfo(
        function_id="f1",
        name="double",
        created_time=_at(NOW - 30),
        counts=common_pb2.FunctionCounts(submitted=10, completed=6, failed=1),
    )
    row = function_row(function, NOW)
    assert (row["submitted"], row["completed"], row["failed"], row["in_progress"]) == (10, 6, 1, 3)
    assert row["age"] == 30.0


def test_the_queue_oldest_is_exact_on_the_last_page_and_a_bound_otherwise() -> None:
    page = gateway_pb2.ListTasksResponse(
        tasks=[
            common_pb2.TaskState(task_id="new", created_time=_at(NOW - 1)),
            common_pb2.TaskState(task_id="old", created_time=_at(NOW - 9)),
        ]
    )
    assert queue_info(2, page, NOW) == {"depth": 2, "oldest_age": 9.0, "oldest_exact": True}
    page.next_page_token = "more"
    assert queue_info(500, page, NOW) == {"depth": 500, "oldest_age": 9.0, "oldest_exact": False}
    empty = gateway_pb2.ListTasksResponse()
    assert queue_info(0, empty, NOW) == {"depth": 0, "oldest_age": None, "oldest_exact": True}
    assert queue_info(3, None, NOW) == {"depth": 3, "oldest_age": None, "oldest_exact": False}


def test_throughput_counts_what_the_workers_finished_between_two_looks() -> None:
    series = Throughput()
    start = 1000 * BUCKET_SECONDS  # a bar's start
    series.observe([_worker("w1", completed=100, failed=5)], start)  # the baseline
    series.observe([_worker("w1", completed=110, failed=5)], start + 1)  # +10
    series.observe([_worker("w1", completed=110, failed=7)], start + 2)  # +2
    bars = series.series(start + 2)
    assert len(bars["rates"]) == BUCKETS
    assert bars["rates"][-1] == 12 / BUCKET_SECONDS
    assert sum(bars["rates"][:-1]) == 0
    assert bars["last_minute"] == 12
    # Next bar: a worker that connected since the last look counts all it finished; one seen
    # before the first look only grows; one that reconnected (counters down) is a baseline.
    series.observe(
        [
            _worker("w1", completed=3),  # reconnected under the same id
            _worker("w2", completed=4, connected_time=_at(start + 2.5)),
        ],
        start + BUCKET_SECONDS,
    )
    bars = series.series(start + BUCKET_SECONDS)
    assert bars["rates"][-2:] == [12 / BUCKET_SECONDS, 4 / BUCKET_SECONDS]
    assert bars["last_minute"] == 16


def test_throughput_forgets_bars_older_than_the_chart() -> None:
    series = Throughput()
    series.observe([_worker("w1", completed=0)], 0.0)
    series.observe([_worker("w1", completed=50)], 1.0)
    later = BUCKETS * BUCKET_SECONDS + 1.0
    series.observe([_worker("w1", completed=51)], later)
    bars = series.series(later)
    assert bars["rates"][-1] == 1 / BUCKET_SECONDS
    assert sum(bars["rates"]) == 1 / BUCKET_SECONDS  # the 50 fell off the left edge
    assert bars["last_minute"] == 1


def test_a_snapshot_shows_what_it_has_and_says_what_is_missing() -> None:
    parts = Parts(
        workers=gateway_pb2.ListWorkersResponse(
            mode="push", queued=7, workers=[_worker("w1", in_flight=2)]
        ),
        missing={"tasks": "this gateway has no ListTasks (UNIMPLEMENTED)"},
    )
    snapshot = build_snapshot(parts, NOW, Throughput())
    json.dumps(snapshot)  # JSON-ready
    assert snapshot["mode"] == "push"
    assert snapshot["queue"] == {"depth": 7, "oldest_age": None, "oldest_exact": False}
    assert [w["worker_id"] for w in snapshot["workers"]] == ["w1"]
    assert snapshot["tasks"] is None and snapshot["functions"] is None
    assert snapshot["missing"] == {"tasks": "this gateway has no ListTasks (UNIMPLEMENTED)"}
    nothing = build_snapshot(
        Parts(missing={"workers": "ListWorkers: UNAVAILABLE: down"}), NOW, Throughput()
    )
    assert nothing["workers"] is None and nothing["queue"]["depth"] == 0


def test_a_snapshot_names_each_task_by_its_function() -> None:
    parts = Parts(
        workers=gateway_pb2.ListWorkersResponse(),
        tasks=gateway_pb2.ListTasksResponse(
            tasks=[common_pb2.TaskState(task_id="t1", function_id="f1")]
        ),
        functions=gateway_pb2.ListFunctionsResponse(
            functions=[common_pb2.FunctionInfo(function_id="f1", name="double")]
        ),
    )
    snapshot = build_snapshot(parts, NOW, Throughput())
    assert [(t["task_id"], t["function"]) for t in snapshot["tasks"]] == [("t1", "double")]
    assert [f["name"] for f in snapshot["functions"]] == ["double"]
