"""The launcher's supervisor: restarts with capped backoff, gives up on a part that keeps dying."""

from __future__ import annotations

import logging

import pytest

from services.launcher.supervisor import RestartPolicy, Supervisor


class FakeChild:
    """A supervised part whose death the test decides."""

    def __init__(self, name: str = "dispatcher") -> None:
        self.name = name
        self.pid = 100
        self.running = True
        self.starts = 0

    def alive(self) -> bool:
        return self.running

    def exit_description(self) -> str:
        return "killed by SIGKILL"

    def start(self, wait: bool = True) -> None:
        assert not wait
        self.starts += 1
        self.pid += 1
        self.running = True

    def tail(self, lines: int) -> list[str]:
        return [f"log line {i}" for i in range(lines)]


def test_delay_doubles_from_half_a_second_and_is_capped() -> None:
    policy = RestartPolicy()
    assert [policy.delay(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]


def test_a_dead_part_is_restarted_after_the_delay(caplog: pytest.LogCaptureFixture) -> None:
    child = FakeChild()
    supervisor = Supervisor(lambda: [child], RestartPolicy())
    child.running = False
    with caplog.at_level(logging.INFO):
        supervisor.step(now=10.0)
        supervisor.step(now=10.4)
        assert child.starts == 0
        supervisor.step(now=10.5)
    assert child.starts == 1 and supervisor.failure is None
    assert "dispatcher (pid 100) died (killed by SIGKILL); restarting it in 0.5 s" in caplog.text
    assert "restarted dispatcher (pid 101)" in caplog.text


def _die_and_restart(supervisor: Supervisor, child: FakeChild, now: float) -> float:
    """Kills the child at ``now``; the delay the supervisor waited before it restarted it."""
    child.running = False
    supervisor.step(now)
    waited = 0.0
    while child.starts == 0 or not child.running:
        if supervisor.failure is not None:
            return -1.0
        waited += 0.25
        supervisor.step(now + waited)
    return waited


def test_delays_grow_while_it_keeps_dying_and_reset_after_a_long_run() -> None:
    child = FakeChild()
    supervisor = Supervisor(lambda: [child], RestartPolicy(max_deaths=100))
    now, delays = 100.0, []
    for _ in range(3):
        child.starts = 0
        delays.append(_die_and_restart(supervisor, child, now))
        now += delays[-1] + 1.0  # it runs for a second, then dies again
    child.starts = 0
    delays.append(_die_and_restart(supervisor, child, now + 31.0))  # ran 31 s: a fresh start
    assert delays == [0.5, 1.0, 2.0, 0.5]


def test_a_part_that_keeps_dying_is_reported_with_its_log_and_not_restarted() -> None:
    child = FakeChild("rest")
    supervisor = Supervisor(lambda: [child], RestartPolicy())
    now = 0.0
    for _ in range(4):
        child.starts = 0
        now += _die_and_restart(supervisor, child, now) + 0.1
    assert supervisor.failure is None
    child.running = False
    supervisor.step(now)
    assert supervisor.failure is not None
    first, *rest = supervisor.failure.splitlines()
    assert first == "rest died 5 times within 60 s; giving up; last lines of its log:"
    assert rest[-1].strip() == "log line 19"
    restarts = child.starts
    supervisor.step(now + 60.0)
    assert child.starts == restarts


def test_deaths_spread_over_more_than_the_window_never_give_up() -> None:
    child = FakeChild()
    supervisor = Supervisor(lambda: [child], RestartPolicy())
    for minute in range(8):
        child.starts = 0
        assert _die_and_restart(supervisor, child, minute * 20.0) > 0
    assert supervisor.failure is None


def test_stopped_supervisor_restarts_nothing() -> None:
    child = FakeChild()
    supervisor = Supervisor(lambda: [child], RestartPolicy())
    supervisor.pause()
    child.running = False
    supervisor.step(0.0)
    supervisor.step(5.0)
    assert child.starts == 0
