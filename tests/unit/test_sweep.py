"""The stranded-task sweep and outcome records (pure logic, no I/O)."""

from __future__ import annotations

from faas.v1 import common_pb2, dispatcher_pb2

from services.common.store import LostAttempt
from services.dispatcher.core import _outcome_record
from services.dispatcher.sweep import StrandedSweep


def test_an_unheld_attempt_is_stranded_at_the_second_sweep() -> None:
    sweep = StrandedSweep()
    running = {"t1": "a1", "t2": "a2", "t3": "a3"}
    assert sweep.check(running, held={"a2"}) == []  # first sight: suspects only
    assert sweep.check(running, held={"a2"}) == [LostAttempt("t1", "a1"), LostAttempt("t3", "a3")]
    assert sweep.check(running, held={"a2"}) == []  # reported once, then suspects again


def test_an_attempt_that_moved_on_or_is_held_again_is_not_stranded() -> None:
    sweep = StrandedSweep()
    sweep.check({"t1": "a1", "t2": "a2", "t3": "a3"}, held=set())
    # t1 got a new attempt, t2 is held now (its write was under way), t3 finished.
    assert sweep.check({"t1": "b1", "t2": "a2"}, held={"a2"}) == []
    assert sweep.check({"t1": "b1", "t2": "a2"}, held={"a2"}) == [LostAttempt("t1", "b1")]


def _outcome(status: int, cause: int, message: str = "m") -> dispatcher_pb2.TaskOutcome:
    return dispatcher_pb2.TaskOutcome(
        task_id="t",
        attempt_id="a",
        status=status,  # type: ignore[arg-type]
        error=common_pb2.TaskError(cause=cause, message=message),  # type: ignore[arg-type]
    )


def test_unknown_enum_values_become_a_defined_failed_record() -> None:
    record = _outcome_record(_outcome(common_pb2.TASK_STATUS_FAILED, 99))
    assert (record.status, record.cause) == ("FAILED", "")
    assert record.message == "the worker reported an unknown failure cause (99); m"
    record = _outcome_record(_outcome(77, 0, ""))
    assert (record.status, record.cause) == ("FAILED", "")
    assert record.message == "the worker reported an invalid status (77)"
    record = _outcome_record(_outcome(common_pb2.TASK_STATUS_QUEUED, 0, ""))
    assert record.status == "FAILED" and "invalid status (1)" in record.message


def test_known_values_are_stored_as_sent() -> None:
    record = _outcome_record(_outcome(common_pb2.TASK_STATUS_FAILED, 2))
    assert (record.status, record.cause, record.message) == ("FAILED", "TIMEOUT", "m")
    record = _outcome_record(_outcome(common_pb2.TASK_STATUS_COMPLETED, 0, ""))
    assert (record.status, record.cause) == ("COMPLETED", "")
