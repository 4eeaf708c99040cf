"""Fault-test helpers: task functions, a ledger of what the platform said about each task, and
a seeded chaos loop that kills, freezes and restarts the platform's parts.

The ledger is the judge of "every acknowledged task ends": it records every task id a
submission returned, the first terminal state seen for it, and every later reading that
differs from that first one. ``Ledger.tally`` turns that into four counts: lost, stranded,
wrong and duplicated.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dill
import grpc
import redis
from faas.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

from services.common.store.keys import Keys
from services.launcher import Platform
from services.launcher.platform import ServiceProcess
from tests.support import TERMINAL_CODES


def task_functions() -> dict[str, Callable[..., int]]:
    """The functions the fault tests run, made here so that dill pickles them by value."""

    def square(x: int) -> int:
        return x * x

    def slow_square(x: int, seconds: float) -> int:
        import time

        time.sleep(seconds)
        return x * x

    return {"square": square, "slow_square": slow_square}


# --- what the platform says about each task -------------------------------------------------


def _name(enum: Any, value: int) -> str:
    try:
        return str(enum.Name(value))
    except ValueError:
        return str(value)


@dataclass(frozen=True, slots=True)
class Terminal:
    """Everything about a terminal task that must never change once it is terminal."""

    status: int
    result: bytes
    cause: int
    attempts: int
    worker_id: str
    finished_ms: int

    @classmethod
    def of(cls, state: common_pb2.TaskState) -> Terminal:
        return cls(
            status=state.status,
            result=state.result,
            cause=state.error.cause,
            attempts=state.attempts,
            worker_id=state.worker_id,
            finished_ms=state.finished_time.ToMilliseconds(),
        )

    def describe(self) -> str:
        status = _name(common_pb2.TaskStatus, self.status)
        cause = _name(common_pb2.FailureCause, self.cause) if self.cause else "-"
        return (
            f"{status} cause={cause} attempts={self.attempts} worker={self.worker_id} "
            f"finished={self.finished_ms} result={self.result[:40]!r}"
        )


@dataclass(slots=True)
class TaskRecord:
    expected: Any
    via: str
    first: Terminal | None = None
    last_status: int = common_pb2.TASK_STATUS_UNSPECIFIED
    not_found: bool = False
    not_found_readings: int = 0
    changes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Tally:
    """The verdict on a set of acknowledged tasks."""

    acknowledged: int
    completed: int
    lost: list[str]
    stranded: list[str]
    wrong: list[str]
    duplicated: list[str]

    def counts(self) -> dict[str, int]:
        return {
            "acknowledged": self.acknowledged,
            "completed": self.completed,
            "lost": len(self.lost),
            "stranded": len(self.stranded),
            "wrong": len(self.wrong),
            "duplicated": len(self.duplicated),
        }

    @property
    def clean(self) -> bool:
        return not (self.lost or self.stranded or self.wrong or self.duplicated)

    def report(self, limit: int = 10) -> str:
        lines = [" ".join(f"{k}={v}" for k, v in self.counts().items())]
        for name in ("lost", "stranded", "wrong", "duplicated"):
            items: list[str] = getattr(self, name)
            lines += [f"  {name}: {item}" for item in items[:limit]]
        return "\n".join(lines)


class Probe:
    """Reads one task's state from the gateway over its own channel; None for NOT_FOUND."""

    def __init__(self, gateway_target: str) -> None:
        self.channel = grpc.insecure_channel(gateway_target)
        self.stub = gateway_pb2_grpc.GatewayServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def read(self, task_id: str, timeout: float = 2.0) -> common_pb2.TaskState | None:
        try:
            reply = self.stub.GetResult(
                gateway_pb2.GetResultRequest(task_id=task_id), timeout=timeout
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        state: common_pb2.TaskState = reply.task
        return state


class Ledger:
    """Every acknowledged task, what it should return, and what the platform said about it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskRecord] = {}
        self._recheck = 0
        self.abandoned = 0  # submissions never acknowledged (they do not count)
        self.odd_replies: list[str] = []  # answers to a valid submission that are not 200/503

    def acknowledge(self, task_id: str, expected: Any, via: str) -> None:
        with self._lock:
            if task_id in self._tasks:
                self.odd_replies.append(f"task id {task_id} acknowledged twice ({via})")
                return
            self._tasks[task_id] = TaskRecord(expected, via)

    def __len__(self) -> int:
        with self._lock:
            return len(self._tasks)

    def pending(self) -> list[str]:
        """Ids never seen terminal yet."""
        with self._lock:
            return [t for t, r in self._tasks.items() if r.first is None]

    def terminal_slice(self, count: int) -> list[str]:
        """The next ``count`` ids already seen terminal, round robin, to read them again."""
        with self._lock:
            done = [t for t, r in self._tasks.items() if r.first is not None]
            if not done:
                return []
            start = self._recheck % len(done)
            self._recheck = start + count
            return (done[start:] + done[:start])[:count]

    def all_ids(self) -> list[str]:
        with self._lock:
            return list(self._tasks)

    def observe(self, task_id: str, state: common_pb2.TaskState | None) -> None:
        """Records one reading (None: the platform said NOT_FOUND)."""
        with self._lock:
            record = self._tasks[task_id]
            if state is None:
                record.not_found = True
                record.not_found_readings += 1
                return
            record.not_found = False
            record.last_status = state.status
            if state.status not in TERMINAL_CODES:
                if record.first is not None:
                    record.changes.append(
                        f"back to {_name(common_pb2.TaskStatus, state.status)} after "
                        f"{record.first.describe()}"
                    )
                return
            seen = Terminal.of(state)
            if record.first is None:
                record.first = seen
            elif seen != record.first:
                record.changes.append(f"{record.first.describe()} -> {seen.describe()}")

    def poll(self, probe: Probe, task_ids: list[str], timeout: float = 1.0) -> bool:
        """Reads each id once; stops at the first call that fails (an outage); True if all read."""
        for task_id in task_ids:
            try:
                state = probe.read(task_id, timeout)
            except grpc.RpcError:
                return False
            self.observe(task_id, state)
        return True

    def settle(self, probe: Probe, timeout: float) -> float:
        """Polls until every task was seen terminal or ``timeout`` passed; seconds it took."""
        started = time.monotonic()
        while True:
            pending = self.pending()
            if not pending or time.monotonic() - started > timeout:
                return time.monotonic() - started
            if not self.poll(probe, pending):
                time.sleep(0.5)  # the platform is not answering: wait for it, then read again
            elif self.pending():
                time.sleep(0.2)  # between polling passes over the tasks still running

    def final_pass(self, probe: Probe, tries: int = 5) -> None:
        """Reads every task once more (retrying a failed call), to catch late changes."""
        for task_id in self.all_ids():
            for attempt in range(tries):
                try:
                    state = probe.read(task_id, timeout=5.0)
                except grpc.RpcError:
                    time.sleep(0.5 * (attempt + 1))  # a call failed after the faults stopped
                    continue
                self.observe(task_id, state)
                break

    def tally(self) -> Tally:
        with self._lock:
            records = dict(self._tasks)
        lost, stranded, wrong, duplicated = [], [], [], []
        completed = 0
        for task_id, r in records.items():
            if r.changes:
                duplicated.append(f"{task_id} ({r.via}): " + "; ".join(r.changes[:3]))
            if r.not_found:
                lost.append(f"{task_id} ({r.via}): NOT_FOUND")
                continue
            if r.first is None:
                name = _name(common_pb2.TaskStatus, r.last_status)
                stranded.append(f"{task_id} ({r.via}): still {name}")
                continue
            if r.first.status != common_pb2.TASK_STATUS_COMPLETED:
                wrong.append(f"{task_id} ({r.via}): {r.first.describe()}")
                continue
            value = dill.loads(r.first.result)
            if value != r.expected:
                wrong.append(f"{task_id} ({r.via}): returned {value!r}, expected {r.expected!r}")
                continue
            completed += 1
        return Tally(len(records), completed, lost, stranded, wrong, duplicated)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def stored_view(redis_url: str, tasks: list[str]) -> list[str]:
    """What Redis holds for each of ``tasks`` (an id, or a tally line starting with one)."""
    keys = Keys()
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    lines = []
    try:
        for task in tasks:
            task_id = task.split()[0]
            fields = client.hgetall(keys.task(task_id))
            shown = {
                _text(k): _text(v)[:60]
                for k, v in sorted(fields.items())
                if _text(k) not in ("payload", "result", "traceback")
            }
            running = client.zscore(keys.running, task_id) is not None
            queued = client.zscore(keys.queued, task_id) is not None
            lines.append(f"{task_id}: in running={running} queued={queued} {shown}")
    finally:
        client.close()
    return lines


class Poller:
    """A thread that keeps reading every pending task, and some terminal ones again."""

    def __init__(self, ledger: Ledger, gateway_target: str, recheck: int = 30) -> None:
        self.ledger = ledger
        self.probe = Probe(gateway_target)
        self.recheck = recheck
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poller", daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.probe.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            ids = self.ledger.pending() + self.ledger.terminal_slice(self.recheck)
            if not self.ledger.poll(self.probe, ids):
                self._stop.wait(0.5)  # an outage: try again in a moment
            else:
                self._stop.wait(0.2)  # between passes


# --- processes ------------------------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (to tell a pid from a reused one), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def descendants(pid: int) -> dict[int, str]:
    """Every live descendant of ``pid`` with its start time (Linux /proc)."""
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                for child in children.read_text().split():
                    started = _start_time(int(child))
                    if started is not None and int(child) not in found:
                        found[int(child)] = started
                        todo.append(int(child))
    return found


def kill_leftovers(processes: dict[int, str]) -> int:
    """SIGKILLs those of ``processes`` still alive (same pid and start time); how many."""
    killed = 0
    for pid, started in processes.items():
        if _start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


# --- the chaos loop -------------------------------------------------------------------------

ACTIONS = ("kill", "stop", "restart")


@dataclass(frozen=True, slots=True)
class FaultRecord:
    at: float
    target: str
    action: str
    detail: str
    took: float

    def __str__(self) -> str:
        return (
            f"t={self.at:6.1f}s {self.action:7} {self.target:10} {self.detail} ({self.took:.1f}s)"
        )


class Chaos:
    """Breaks one part of the platform at a time, at random from ``seed``, and brings it back.

    Each fault is one of: ``kill`` (SIGKILL, then start it again through the Platform API),
    ``stop`` (SIGSTOP for a few seconds, then SIGCONT; Redis longer than the services' Redis
    timeout) and ``restart`` (SIGTERM, then start).
    Every (part, action) pair comes once per shuffled round, so a long enough run covers all.
    """

    def __init__(
        self,
        platform: Platform,
        seed: int,
        *,
        pause: tuple[float, float] = (1.5, 3.5),
        frozen: tuple[float, float] = (2.0, 5.0),
        redis_frozen: tuple[float, float] = (4.0, 7.0),
    ) -> None:
        self.platform = platform
        self.seed = seed
        self.rng = random.Random(seed)
        self.pause = pause
        self.frozen = frozen
        self.redis_frozen = redis_frozen  # past the services' 3 s Redis timeout
        self.log: list[FaultRecord] = []
        self.orphans: dict[int, str] = {}  # pool processes of killed workers
        self._stopped: list[int] = []
        self._deck: list[tuple[str, str]] = []
        self._started = time.monotonic()

    def _parts(self) -> dict[str, ServiceProcess | None]:
        p = self.platform
        parts: dict[str, ServiceProcess | None] = {"redis": None}
        parts.update(dispatcher=p.dispatcher, gateway=p.gateway, rest=p.rest)
        parts.update({f"worker{i}": w for i, w in enumerate(p.workers)})
        return parts

    def next_fault(self) -> tuple[str, str]:
        if not self._deck:
            self._deck = [(part, action) for part in self._parts() for action in ACTIONS]
            self.rng.shuffle(self._deck)
        return self._deck.pop()

    def run(self, seconds: float, stop: threading.Event | None = None) -> None:
        """Injects faults for ``seconds``, with a random pause before each."""
        self._started = time.monotonic()
        end = self._started + seconds
        while time.monotonic() < end and not (stop and stop.is_set()):
            pause = self.rng.uniform(*self.pause)
            if time.monotonic() + pause >= end:
                break
            time.sleep(pause)  # the gap between two faults, drawn from the seed
            self.inject(*self.next_fault())

    def inject(self, part: str, action: str) -> None:
        at = time.monotonic() - self._started
        service = self._parts()[part]
        before = self._pid(service)
        if action == "stop":
            seconds = self.rng.uniform(*(self.frozen if service else self.redis_frozen))
            self._freeze(before, seconds)
            detail = f"pid {before} for {seconds:.1f}s"
        else:
            if action == "kill" and part.startswith("worker"):
                self.orphans.update(descendants(before))
            sig = signal.SIGKILL if action == "kill" else signal.SIGTERM
            if service is None:
                assert self.platform.redis is not None
                self.platform.redis.stop(sig)
                self.platform.redis.start()
            else:
                service.stop(sig)
                service.start()
            detail = f"pid {before} -> {self._pid(service)}"
        record = FaultRecord(at, part, action, detail, time.monotonic() - self._started - at)
        self.log.append(record)
        print(f"chaos: {record}", flush=True)

    def _pid(self, service: ServiceProcess | None) -> int:
        if service is not None:
            return service.pid
        assert self.platform.redis is not None and self.platform.redis.process is not None
        return self.platform.redis.process.pid

    def _freeze(self, pid: int, seconds: float) -> None:
        os.kill(pid, signal.SIGSTOP)
        self._stopped.append(pid)
        try:
            time.sleep(seconds)  # the length of the freeze is the fault itself
        finally:
            self.thaw()

    def thaw(self) -> None:
        """SIGCONTs whatever this loop froze (also after an error)."""
        while self._stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._stopped.pop(), signal.SIGCONT)

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for record in self.log:
            key = f"{record.action} {record.target}"
            counts[key] = counts.get(key, 0) + 1
        return ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))


@contextlib.contextmanager
def frozen(pid: int, seconds: float) -> Iterator[None]:
    """SIGSTOPs ``pid``, yields, then keeps it stopped until ``seconds`` passed and SIGCONTs it."""
    os.kill(pid, signal.SIGSTOP)
    started = time.monotonic()
    try:
        yield
        left = seconds - (time.monotonic() - started)
        if left > 0:
            time.sleep(left)  # the length of the hang is the fault itself
    finally:
        os.kill(pid, signal.SIGCONT)
