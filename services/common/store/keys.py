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
                                        (whose it is; absent: ``default``), ``submitted``,
                                        ``completed``, ``failed`` (its tasks so far, counted by
                                        the scripts that store them and end them)
``faas:task:{id}``              hash    ``function_id``, ``status``, ``payload`` (args, removed once
                                        terminal), ``timeout``, ``attempts``, ``attempt_id``,
                                        ``worker_id``, ``result``, ``cause``, ``message``,
                                        ``traceback``, ``created``/``started``/``finished`` (ms),
                                        ``requeued`` (ms, its last return to the queue),
                                        ``output`` and ``output_bytes`` (what it printed,
                                        bounded; once it ended),
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
``faas:tasks:{tenant}``         zset    ids of the tenant's tasks, scored by creation time (ms):
                                        what ListTasks pages through
``faas:function-tasks:{id}``    zset    ids of one function's tasks, scored by creation time (ms)
``faas:functions:{tenant}``     zset    ids of the tenant's functions, scored by creation time
                                        (ms): what ListFunctions pages through
``faas:dispatcher``             hash    ``updated`` (ms), ``interval`` (ms between reports),
                                        ``workers``, ``slots``, ``free``: the dispatcher's last
                                        report of itself, every second (why a task waits)
``faas:heartbeats``             hash    worker id -> its last heartbeat (ms), written by each
                                        report, which takes out the workers gone since
==============================  ======  ==========================================================

A task is in exactly one of ``queued`` and ``running`` while it is not terminal, and in neither
once it is; the Lua scripts in :mod:`scripts` keep that true atomically, and take a task out of
its tenant's ``open`` set in the same script that makes it terminal. A tenant name has no ``:``
(see :mod:`services.common.enrollment`), so ``request:{tenant}:{id}`` keys of two tenants never
meet.

The three listing indexes are written by the same scripts that store a task (CREATE_TASKS) and
with the function (``register_function``, in one MULTI). A task hash may expire (``result_ttl``)
before its index entries: a listing that meets an id without a hash takes it out then. The
function's counts are bumped where its task is stored or becomes terminal, once per task.
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

    def tenant_tasks(self, tenant: str) -> str:
        """The ids of a tenant's tasks by creation time (a listing index)."""
        return f"{self.prefix}tasks:{tenant}"

    def function_tasks(self, function_id: str) -> str:
        """The ids of one function's tasks by creation time (a listing index)."""
        return f"{self.prefix}function-tasks:{function_id}"

    def tenant_functions(self, tenant: str) -> str:
        """The ids of a tenant's functions by creation time (a listing index)."""
        return f"{self.prefix}functions:{tenant}"

    @property
    def queued(self) -> str:
        return f"{self.prefix}queued"

    @property
    def running(self) -> str:
        return f"{self.prefix}running"

    @property
    def dispatcher(self) -> str:
        """What the dispatcher last reported of itself (see :mod:`._presence`)."""
        return f"{self.prefix}dispatcher"

    @property
    def heartbeats(self) -> str:
        """Each connected worker's last heartbeat (ms), as the dispatcher last reported."""
        return f"{self.prefix}heartbeats"
