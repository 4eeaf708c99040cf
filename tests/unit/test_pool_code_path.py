"""Pool children import users' modules from their code path; a module they cannot import fails
the job with CODE_NOT_IMPORTABLE and a message that names it (real child processes, no network).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import multiprocessing
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import dill
import pytest
from faas.v1 import common_pb2

from services.common.pool import Job, Outcome, ProcessPool

COMPLETED = common_pb2.TASK_STATUS_COMPLETED
FAILED = common_pb2.TASK_STATUS_FAILED
NOT_IMPORTABLE = common_pb2.FAILURE_CAUSE_CODE_NOT_IMPORTABLE
TIMEOUT = common_pb2.FAILURE_CAUSE_TIMEOUT
WAIT = 20.0  # generous ceiling for a child to start and answer


@pytest.fixture(autouse=True)
def no_leftover_children() -> Iterator[None]:
    yield
    assert multiprocessing.active_children() == []


def write_module(folder: Path, name: str, source: str) -> ModuleType:
    """Writes ``name.py`` into ``folder`` and imports it here (only here: children are spawned
    with this process's sys.path, which ``folder`` leaves again right after the import)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


@pytest.fixture
def mylib(tmp_path: Path) -> Iterator[ModuleType]:
    name = f"faas_mylib_{uuid.uuid4().hex[:8]}"
    module = write_module(
        tmp_path / "app",
        name,
        """
        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y

        def double(x):
            return 2 * x

        def norm1(point):
            return abs(point.x) + abs(point.y)
        """,
    )
    yield module
    sys.modules.pop(name, None)


def job(function_payload: bytes, args: tuple[Any, ...], function_id: str = "fn") -> Job:
    attempt = uuid.uuid4().hex
    return Job(
        task_id=f"task-{attempt}",
        attempt_id=attempt,
        function_id=function_id,
        function_payload=function_payload,
        args_payload=dill.dumps((args, {})),
    )


async def outcomes_of(jobs: list[Job], **options: Any) -> list[Outcome]:
    """Runs ``jobs`` one after another on a one-process pool; their outcomes."""
    queue: asyncio.Queue[Outcome] = asyncio.Queue()
    slot = asyncio.Event()
    found = []
    async with ProcessPool(1, queue.put_nowait, on_slot_ready=slot.set, **options) as pool:
        for item in jobs:
            while not pool.accepting:  # a child killed by the last job is being replaced
                slot.clear()
                await asyncio.wait_for(slot.wait(), WAIT)
            pool.submit(item)
            found.append(await asyncio.wait_for(queue.get(), WAIT))
    return found


def test_a_function_of_a_module_it_cannot_import(mylib: ModuleType) -> None:
    by_reference = dill.dumps(mylib.double)
    assert mylib.__name__.encode() in by_reference and b"co_code" not in by_reference
    by_value = dill.dumps(lambda x: x + 1)
    jobs = [
        job(by_reference, (21,)),
        job(by_reference, (21,)),  # its payload is sent again: the child holds no copy
        job(by_value, (mylib.Point(3, -4),), function_id="other"),
    ]
    first, again, arguments = asyncio.run(outcomes_of(jobs, code_path=["/nowhere/else"]))
    module = mylib.__name__
    for outcome in (first, again):
        assert (outcome.status, outcome.cause) == (FAILED, NOT_IMPORTABLE), outcome.message
        assert outcome.message == (
            f"function pickled by reference to module '{module}', which this worker cannot "
            f"import (code path: /nowhere/else); register it by value (the SDK does) or put "
            f"{module} on the workers' code path (--code-path / FAAS_CODE_PATH)"
        )
        assert isinstance(dill.loads(outcome.result), ModuleNotFoundError)
    assert (arguments.status, arguments.cause) == (FAILED, NOT_IMPORTABLE), arguments.message
    assert arguments.message.startswith(
        f"arguments pickled by reference to module '{module}', which this worker cannot import"
    )


def test_the_code_path_makes_it_importable(mylib: ModuleType, tmp_path: Path) -> None:
    code_path = [str(tmp_path / "empty"), str(tmp_path / "app")]
    jobs = [
        job(dill.dumps(mylib.double), (21,)),
        job(dill.dumps(mylib.norm1), (mylib.Point(3, -4),), function_id="norm1"),
    ]
    outcomes = asyncio.run(outcomes_of(jobs, code_path=code_path))
    assert [o.status for o in outcomes] == [COMPLETED, COMPLETED], [o.message for o in outcomes]
    assert [dill.loads(o.result) for o in outcomes] == [42, 7]


def test_a_name_the_module_on_the_code_path_lacks(mylib: ModuleType, tmp_path: Path) -> None:
    # An older copy of the module on the workers' code path, without the function.
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / f"{mylib.__name__}.py").write_text("VERSION = 0\n")
    (outcome,) = asyncio.run(
        outcomes_of([job(dill.dumps(mylib.double), (1,))], code_path=[str(stale)])
    )
    assert (outcome.status, outcome.cause) == (FAILED, NOT_IMPORTABLE), outcome.message
    assert outcome.message.startswith(
        f"function pickled by reference to '{mylib.__name__}.double', but module "
        f"'{mylib.__name__}' on this worker has no 'double' (code path: {stale});"
    )


def test_a_module_whose_own_import_fails(tmp_path: Path) -> None:
    name = f"faas_needs_{uuid.uuid4().hex[:8]}"
    source = "import faas_no_such_dependency_xyz\n\ndef f():\n    return 1\n"
    module = write_module(tmp_path / "lib", name, "def f():\n    return 1\n")
    try:
        payload = dill.dumps(module.f)
    finally:
        sys.modules.pop(name, None)
    (tmp_path / "lib" / f"{name}.py").write_text(source)
    (outcome,) = asyncio.run(outcomes_of([job(payload, ())], code_path=[str(tmp_path / "lib")]))
    assert (outcome.status, outcome.cause) == (FAILED, NOT_IMPORTABLE), outcome.message
    assert outcome.message.startswith(
        f"function pickled by reference to module '{name}', which this worker cannot import: "
        "ModuleNotFoundError: No module named 'faas_no_such_dependency_xyz'"
    )
    assert "install what" in outcome.message


def slow_to_import(folder: Path, seconds: float) -> dict[str, bytes]:
    """Its functions ``quick`` and ``nap``, pickled by reference to a module whose import sleeps
    ``seconds`` (in the children only: here it is imported before the sleep is written in)."""
    name = f"faas_heavy_{uuid.uuid4().hex[:8]}"
    body = textwrap.dedent(
        """
        import time

        def quick(x):
            return x

        def nap(x):
            time.sleep(x)
            return x
        """
    )
    module = write_module(folder, name, body)
    try:
        payloads = {fn: dill.dumps(getattr(module, fn)) for fn in ("quick", "nap")}
    finally:
        sys.modules.pop(name, None)
    assert all(b"_create_function" not in p and name.encode() in p for p in payloads.values())
    (folder / f"{name}.py").write_text(f"import time\ntime.sleep({seconds})\n{body}")
    return payloads


def timed(payload: bytes, args: tuple[Any, ...], timeout: float, function_id: str) -> Job:
    return dataclasses.replace(job(payload, args, function_id), timeout=timeout)


@pytest.mark.parametrize("queue_depth", [1, 4])
def test_the_import_of_a_heavy_module_is_not_counted_in_the_time_limit(
    tmp_path: Path, queue_depth: int
) -> None:
    # Its import takes twice the time limit: the first job of a fresh child loads it, and the
    # limit counts the function's run, not its loading.
    heavy = slow_to_import(tmp_path / "lib", 1.0)
    jobs = [
        timed(heavy["quick"], (7,), 0.5, "quick"),
        timed(heavy["nap"], (30,), 0.5, "nap"),  # the run itself is still limited
        timed(heavy["nap"], (0,), 0.5, "nap"),
    ]
    code_path = [str(tmp_path / "lib")]
    first, overrun, after = asyncio.run(
        outcomes_of(jobs, code_path=code_path, queue_depth=queue_depth)
    )
    assert first.status == COMPLETED, first.message
    assert dill.loads(first.result) == 7
    assert (overrun.status, overrun.cause) == (FAILED, TIMEOUT), overrun.message
    assert overrun.message == "task exceeded its time limit of 0.5 s"
    # The killed child's replacement imports the module again, and still runs the job.
    assert after.status == COMPLETED, after.message


def test_a_load_longer_than_the_grace_times_out_saying_so(tmp_path: Path) -> None:
    heavy = slow_to_import(tmp_path / "lib", 60.0)
    jobs = [timed(heavy["quick"], (7,), 0.3, "quick"), job(dill.dumps(abs), (-2,), "abs")]
    stuck, after = asyncio.run(outcomes_of(jobs, code_path=[str(tmp_path / "lib")], load_grace=0.5))
    assert (stuck.status, stuck.cause) == (FAILED, TIMEOUT), stuck.message
    assert stuck.message.startswith(
        "task exceeded its time limit of 0.3 s: its function was still loading (unpickling it, "
        "importing its modules) after 0."
    ), stuck.message
    assert isinstance(dill.loads(stuck.result), TimeoutError)
    assert (after.status, dill.loads(after.result)) == (COMPLETED, 2)
