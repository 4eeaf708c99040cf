"""Task status over REST: the four statuses, in order, and 404 for unknown tasks."""

from __future__ import annotations

import threading
import uuid

from tests.support import TERMINAL, RestClient, wait_until


def test_status_is_one_of_the_four(rest: RestClient) -> None:
    def f() -> int:
        return 1

    task_id = rest.execute(rest.register(f))
    assert rest.status(task_id) in ("QUEUED", "RUNNING", "COMPLETED")
    rest.wait_result(task_id)
    reply = rest.http.get(f"/status/{task_id}")
    assert reply.json() == {"task_id": task_id, "status": "COMPLETED"}


def test_status_moves_forward_through_running(rest: RestClient) -> None:
    def slow(seconds: float) -> str:
        import time

        time.sleep(seconds)
        return "done"

    task_id = rest.execute(rest.register(slow), 1.5)
    wait_until(lambda: rest.status(task_id) == "RUNNING", 10, "RUNNING")
    seen = []
    while (status := rest.status(task_id)) not in TERMINAL:
        seen.append(status)
        threading.Event().wait(0.05)
    assert status == "COMPLETED"
    assert set(seen) <= {"RUNNING"}


def test_failed_status(rest: RestClient) -> None:
    def boom() -> None:
        raise ValueError("boom")

    task_id = rest.execute(rest.register(boom))
    rest.wait_result(task_id)
    assert rest.status(task_id) == "FAILED"


def test_unknown_task_is_404(rest: RestClient) -> None:
    for path in (f"/status/{uuid.uuid4()}", f"/result/{uuid.uuid4()}"):
        reply = rest.http.get(path)
        assert reply.status_code == 404
        assert "not found" in reply.json()["detail"]
