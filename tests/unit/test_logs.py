"""JSON log lines (issue 13): every line names its service, and a line about a task or worker
carries its ids, given with ``extra=ids(...)`` or taken from the context variables."""

from __future__ import annotations

import io
import json
import logging

import pytest

from services.common import logs


@pytest.fixture
def lines() -> object:
    stream = io.StringIO()
    logs.setup_logging("worker", "DEBUG", json_format=True)
    root = logging.getLogger()
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)

    def read() -> list[dict[str, object]]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield read
    root.handlers[:] = []
    root.setLevel(logging.WARNING)


def test_every_line_names_its_service(lines) -> None:  # type: ignore[no-untyped-def]
    logging.getLogger("some.module").info("hello %s", "there")
    (line,) = lines()
    assert line["service"] == "worker" and line["logger"] == "some.module"
    assert line["msg"] == "hello there" and line["level"] == "INFO"
    assert "task_id" not in line and "worker_id" not in line


def test_ids_from_extra_and_from_context(lines) -> None:  # type: ignore[no-untyped-def]
    log = logging.getLogger("t")
    log.info("ran", extra=logs.ids(task_id="t1", attempt_id="a1", worker_id="w1"))
    token = logs.worker_id_var.set("w-context")
    task = logs.task_id_var.set("t-context")
    try:
        log.warning("from context")
        log.warning("given wins", extra=logs.ids(task_id="t2"))
    finally:
        logs.task_id_var.reset(task)
        logs.worker_id_var.reset(token)
    first, second, third = lines()
    assert (first["task_id"], first["attempt_id"], first["worker_id"]) == ("t1", "a1", "w1")
    assert (second["task_id"], second["worker_id"]) == ("t-context", "w-context")
    assert (third["task_id"], third["worker_id"]) == ("t2", "w-context")


def test_exceptions_keep_their_traceback(lines) -> None:  # type: ignore[no-untyped-def]
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("t").exception("failed", extra=logs.ids(task_id="t9"))
    (line,) = lines()
    assert line["task_id"] == "t9" and "ValueError: boom" in str(line["exc"])


def test_ids_leaves_out_empty_ones() -> None:
    assert logs.ids(task_id="t") == {"task_id": "t"}
    assert logs.ids() == {}
