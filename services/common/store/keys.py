"""Every Redis key MPCSFaaS uses, in one place.

Layout (prefix ``faas:`` by default):

=============================  ======  ==========================================================
key                            type    holds
=============================  ======  ==========================================================
``faas:function:{id}``         hash    ``name``, ``payload`` (dill bytes), ``timeout``, ``created``
                                       (ms), ``by_reference`` (1/0), ``module``, ``qualname``
                                       (what a bare reference names), ``runtime`` and
                                       ``placement`` (serialized ``faas.v1.Runtime`` and
                                       ``faas.v1.Placement``; empty: none given)
``faas:task:{id}``             hash    ``function_id``, ``status``, ``payload`` (args, removed once
                                       terminal), ``timeout``, ``attempts``, ``attempt_id``,
                                       ``worker_id``, ``result``, ``cause``, ``message``,
                                       ``traceback``, ``created``/``started``/``finished`` (ms),
                                       ``placement`` and ``runtime`` (serialized; what a worker
                                       must have, the function's Python; absent: none),
                                       ``pending`` (why it waits, while QUEUED), ``settled``
``faas:queued``                zset    ids of QUEUED tasks, scored by creation time (ms)
``faas:running``               zset    ids of RUNNING tasks, scored by start time (ms)
``faas:request:{request_id}``  string  "task_id function_id" for an idempotency key (24 h); a
                                       batch uses ``{request_id}#{index}`` per task
=============================  ======  ==========================================================

A task is in exactly one of ``queued`` and ``running`` while it is not terminal, and in neither
once it is; the Lua scripts in :mod:`scripts` keep that true atomically.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Builds key names under one prefix, so that tests and tenants can share a server."""

    prefix: str = "faas:"

    def function(self, function_id: str) -> str:
        return f"{self.prefix}function:{function_id}"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}task:{task_id}"

    def request(self, request_id: str) -> str:
        return f"{self.prefix}request:{request_id}"

    @property
    def queued(self) -> str:
        return f"{self.prefix}queued"

    @property
    def running(self) -> str:
        return f"{self.prefix}running"
