"""Every Redis key MPCSFaaS uses, in one place.

Layout (prefix ``faas:`` by default):

==============================  ======  ==========================================================
key                             type    holds
==============================  ======  ==========================================================
``faas:function:{id}``          hash    ``name``, ``payload`` (dill bytes), ``timeout``, ``created``
                                        (ms), ``by_reference`` (1/0), ``module``, ``qualname``
                                        (what a bare reference names), ``runtime`` and
                                        ``placement`` (serialized ``faas.v1.Runtime`` and
                                        ``faas.v1.Placement``; empty: none given), ``tenant``
                                        (whose it is; absent: ``default``)
``faas:task:{id}``              hash    ``function_id``, ``status``, ``payload`` (args, removed once
                                        terminal), ``timeout``, ``attempts``, ``attempt_id``,
                                        ``worker_id``, ``result``, ``cause``, ``message``,
                                        ``traceback``, ``created``/``started``/``finished`` (ms),
                                        ``placement`` and ``runtime`` (serialized; what a worker
                                        must have, the function's Python; absent: none),
                                        ``pending`` (why it waits, while QUEUED), ``settled``,
                                        ``tenant`` (whose it is; absent: ``default``),
                                        ``counted`` (the ``open`` set it is in until terminal;
                                        absent: in none)
``faas:queued``                 zset    ids of QUEUED tasks, scored by creation time (ms)
``faas:running``                zset    ids of RUNNING tasks, scored by start time (ms)
``faas:request:{tenant}:{id}``  string  "task_id function_id" for an idempotency key (24 h) of
                                        one tenant; a batch uses ``{id}#{index}`` per task
``faas:open:{tenant}``          zset    ids of the tenant's QUEUED and RUNNING tasks, scored by
                                        creation time (ms), kept while the gateway limits open
                                        tasks (``--tenant-max-open-tasks``)
==============================  ======  ==========================================================

A task is in exactly one of ``queued`` and ``running`` while it is not terminal, and in neither
once it is; the Lua scripts in :mod:`scripts` keep that true atomically, and take a task out of
its tenant's ``open`` set in the same script that makes it terminal. A tenant name has no ``:``
(see :mod:`services.common.enrollment`), so ``request:{tenant}:{id}`` keys of two tenants never
meet.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.enrollment import DEFAULT_TENANT


@dataclass(frozen=True, slots=True)
class Keys:
    """Builds key names under one prefix, so that tests and tenants can share a server."""

    prefix: str = "faas:"

    def function(self, function_id: str) -> str:
        return f"{self.prefix}function:{function_id}"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}task:{task_id}"

    def request(self, request_id: str, tenant: str = DEFAULT_TENANT) -> str:
        """A tenant's idempotency key (``tenant="*"`` in a SCAN pattern: every tenant's)."""
        return f"{self.prefix}request:{tenant}:{request_id}"

    def open_tasks(self, tenant: str) -> str:
        """The ids of a tenant's tasks that are not terminal yet."""
        return f"{self.prefix}open:{tenant}"

    @property
    def queued(self) -> str:
        return f"{self.prefix}queued"

    @property
    def running(self) -> str:
        return f"{self.prefix}running"
