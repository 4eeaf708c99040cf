"""Chaos soak: every acknowledged task ends, under random kills and freezes of every part (issue 9).

For about ``FAAS_CHAOS_SECONDS`` (default 100) two clients submit tasks, one over REST (single
and batch executions) and one through the SDK, each with a request_id that makes its retries
safe, while a seeded chaos loop (``FAAS_CHAOS_SEED``) kills (SIGKILL), freezes (SIGSTOP for a
few seconds) or restarts (SIGTERM) one part at a time: redis-server, the dispatcher, the
gateway, the REST shim and each worker, starting again what it stopped through the Platform
API. Redis runs with ``appendfsync always`` (so its SIGKILL may lose nothing acknowledged) and
the dispatcher allows 100 attempts (so a FAILED task is a defect, not an exhausted budget).

Only acknowledged tasks (a task id came back) count. After the faults stop, each must end, and
the counts must be zero: lost (the platform no longer knows the id), stranded (not terminal by
the deadline), wrong (FAILED, or a result other than x*x) and duplicated (a terminal state or
result that changed after it was first read).
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis
from faas import FaaSClient
from faas.errors import FaaSError, FaaSTimeout, ServiceUnavailable

from services.common.store.keys import Keys
from services.launcher import Platform
from tests.faults import (
    Chaos,
    Ledger,
    Poller,
    Probe,
    kill_leftovers,
    stored_view,
    task_functions,
)
from tests.integration.conftest import PlatformFactory
from tests.support import GrpcClient, serialize

pytestmark = [pytest.mark.fault, pytest.mark.slow]

CHAOS_SECONDS = float(os.environ.get("FAAS_CHAOS_SECONDS", "100"))
SEED = int(os.environ.get("FAAS_CHAOS_SEED", "9"))
SETTLE_SECONDS = 40.0  # after the last fault, for every acknowledged task to end
SUBMIT_SECONDS = 30.0  # how long one submission is retried (same request_id) before giving up
MAX_PENDING = 60  # clients wait while this many acknowledged tasks have not ended
MAX_ATTEMPTS = 100
SLOW_SHARE = 0.3

Job = tuple[tuple[Any, ...], int]  # (args, expected result)


class Load:
    """The two client loops; each task's input is unique, so a crossed result shows."""

    def __init__(self, platform: Platform, ledger: Ledger, functions: dict[str, str]) -> None:
        self.platform = platform
        self.ledger = ledger
        self.functions = functions
        self.numbers = itertools.count()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._guard, args=(self._rest, SEED + 1), name="rest-load"),
            threading.Thread(target=self._guard, args=(self._sdk, SEED + 2), name="sdk-load"),
        ]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(SUBMIT_SECONDS + 15)

    def _guard(self, loop: Callable[[random.Random], None], seed: int) -> None:
        try:
            loop(random.Random(seed))
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def _job(self, rng: random.Random, slow: bool) -> Job:
        x = next(self.numbers)
        if slow:
            return (x, round(rng.uniform(0.2, 1.0), 2)), x * x
        return (x,), x * x

    def _pace(self, rng: random.Random) -> None:
        while len(self.ledger.pending()) > MAX_PENDING and not self.stop.is_set():
            time.sleep(0.2)  # back-pressure: the platform is behind (or a part is down)
        time.sleep(rng.uniform(0.05, 0.2))  # between two submissions of one client

    def _rest(self, rng: random.Random) -> None:
        with httpx.Client(base_url=self.platform.rest_url, timeout=10.0) as http:
            while not self.stop.is_set():
                slow = rng.random() < SLOW_SHARE
                function_id = self.functions["slow_square" if slow else "square"]
                jobs = [self._job(rng, slow) for _ in range(rng.choice((1, 1, 3)))]
                body: dict[str, Any] = {"function_id": function_id, "request_id": str(uuid.uuid4())}
                if len(jobs) == 1:
                    path, body["payload"] = "/execute_function", serialize((jobs[0][0], {}))
                else:
                    path, body["payloads"] = "/execute_batch", [serialize((a, {})) for a, _ in jobs]
                reply = self._post(http, path, body)
                if reply is not None:
                    ids = reply.get("task_ids") or [reply["task_id"]]
                    for task_id, (_, expected) in zip(ids, jobs, strict=True):
                        self.ledger.acknowledge(task_id, expected, "rest")
                self._pace(rng)

    def _post(self, http: httpx.Client, path: str, body: dict[str, Any]) -> Any:
        """The JSON answer, retrying the same request_id while parts are down; None if never."""
        deadline = time.monotonic() + SUBMIT_SECONDS
        while time.monotonic() < deadline:
            try:
                reply = http.post(path, json=body)
            except httpx.HTTPError:
                reply = None
            if reply is not None and reply.status_code == 200:
                return reply.json()
            if reply is not None and reply.status_code not in (502, 503, 504):
                self.ledger.odd_replies.append(f"POST {path}: {reply.status_code} {reply.text}")
            time.sleep(0.3)  # the REST shim, gateway or Redis is coming back
        self.ledger.abandoned += 1
        return None

    def _sdk(self, rng: random.Random) -> None:
        with FaaSClient(self.platform.gateway_target, timeout=10.0) as client:
            while not self.stop.is_set():
                slow = rng.random() < SLOW_SHARE
                args, expected = self._job(rng, slow)
                function_id = self.functions["slow_square" if slow else "square"]
                request_id = str(uuid.uuid4())
                deadline = time.monotonic() + SUBMIT_SECONDS
                while True:
                    try:
                        task_id = client.execute(function_id, args, request_id=request_id)
                    except FaaSError as exc:
                        if time.monotonic() > deadline:
                            self.ledger.abandoned += 1
                            break
                        if not isinstance(exc, (ServiceUnavailable, FaaSTimeout)):
                            self.ledger.odd_replies.append(f"SDK execute: {exc!r}")
                        time.sleep(0.3)  # a part is down; the same request_id retries safely
                        continue
                    self.ledger.acknowledge(task_id, expected, "sdk")
                    break
                self._pace(rng)


def _stored_tasks(platform: Platform) -> int:
    client = redis.Redis.from_url(platform.redis_url)
    try:
        return sum(1 for _ in client.scan_iter(Keys().task("*"), count=1000))
    finally:
        client.close()


def test_chaos_soak_every_acknowledged_task_ends(make_platform: PlatformFactory) -> None:
    platform = make_platform(
        mode="push",
        workers=2,
        worker_processes=2,
        appendfsync="always",
        extra_env={"FAAS_MAX_ATTEMPTS": str(MAX_ATTEMPTS)},
    )
    platform.dispatcher.argv += ["--max-attempts", str(MAX_ATTEMPTS)]  # for its restarts
    grpc_client = GrpcClient(platform)
    functions = {name: grpc_client.register(fn) for name, fn in task_functions().items()}
    grpc_client.channel.close()
    print(f"chaos: seed {SEED}, {CHAOS_SECONDS:.0f}s of faults", flush=True)
    ledger = Ledger()
    chaos = Chaos(platform, SEED)
    started = time.monotonic()
    probe = Probe(platform.gateway_target)
    try:
        with Poller(ledger, platform.gateway_target), Load(platform, ledger, functions) as load:
            try:
                chaos.run(CHAOS_SECONDS)
            finally:
                chaos.thaw()
        faults_ended = time.monotonic() - started
        took = ledger.settle(probe, SETTLE_SECONDS)
        ledger.final_pass(probe)
        stored = _stored_tasks(platform)
    finally:
        probe.close()
        orphans = kill_leftovers(chaos.orphans)
    tally = ledger.tally()
    print("chaos fault log:\n  " + "\n  ".join(str(r) for r in chaos.log))
    print(f"chaos faults: {len(chaos.log)}: {chaos.summary()}")
    print(
        f"chaos: faults for {faults_ended:.0f}s, settled {took:.1f}s later; stored tasks {stored}, "
        f"abandoned submissions {ledger.abandoned}, odd replies {len(ledger.odd_replies)}, "
        f"pool processes of killed workers still alive at the end {orphans}"
    )
    for line in ledger.odd_replies[:10]:
        print(f"  odd reply: {line[:300]}")
    print(f"chaos counts: {tally.report()}")
    for line in stored_view(platform.redis_url, tally.stranded[:10]):
        print(f"  stranded in Redis: {line}")
    assert not load.errors, load.errors
    assert tally.acknowledged > 0
    assert tally.clean, tally.report()
