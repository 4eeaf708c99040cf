"""What the dispatcher takes back from a worker by itself: tasks held past their time limit (they
FAIL TIMEOUT) and prefetched tasks left unstarted while a process is free (they go back to the
queue). Pure bookkeeping on a session, no I/O: the engine stores and requeues what these return.
"""

from __future__ import annotations

import pickle
import time

from faas.v1 import common_pb2, dispatcher_pb2

from .scheduler import Session, Task

__all__ = ["expire_overdue", "set_deadline", "take_stalled"]


def set_deadline(
    session: Session, attempt_id: str, task: Task, grace: float, start: float | None = None
) -> None:
    """The dispatcher's own limit for a timed attempt: from its start, timeout plus grace."""
    if task.timeout and session.remote:
        begun = time.monotonic() if start is None else start
        session.deadlines[attempt_id] = begun + task.timeout + grace


def expire_overdue(
    session: Session, now: float, grace: float
) -> tuple[list[dispatcher_pb2.TaskOutcome], set[str]]:
    """Releases the attempts held past their deadline: their TIMEOUT outcomes to store, and
    which of them were unstarted (Redis may not record their start)."""
    overdue = [a for a, deadline in session.deadlines.items() if deadline <= now]
    expired: list[dispatcher_pb2.TaskOutcome] = []
    unstarted: set[str] = set()
    for attempt_id in overdue:
        task, was_unstarted = session.release(attempt_id)
        if task is None:
            continue
        if was_unstarted:
            unstarted.add(attempt_id)
        session.failed += 1
        message = (
            f"worker {session.worker_id} held the task past its time limit of "
            f"{task.timeout:g} s plus a grace of {grace:g} s"
        )
        error = common_pb2.TaskError(cause=common_pb2.FAILURE_CAUSE_TIMEOUT, message=message)
        expired.append(
            dispatcher_pb2.TaskOutcome(
                task_id=task.task_id,
                attempt_id=attempt_id,
                status=common_pb2.TASK_STATUS_FAILED,
                result=pickle.dumps(TimeoutError(message)),
                error=error,
            )
        )
    return expired, unstarted


def take_stalled(session: Session, now: float, grace: float) -> list[str]:
    """The prefetched attempts to take back from a worker that has left them unstarted while a
    process of its was free, for ``grace`` s; [] while it has not (yet)."""
    waiting = session.waiting()
    if not waiting or session.busy() >= session.capacity:
        session.stalled_since = None
        return []
    if session.stalled_since is None:
        session.stalled_since = now
        return []
    if now - session.stalled_since < grace:
        return []
    session.stalled_since = None
    return waiting
