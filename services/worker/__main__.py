"""``python -m services.worker [--mode pull|push] N_PROCESSES DISPATCHER_URL``: a worker.

Every setting is a flag (or one of the two positionals) and an environment variable (``--help``
lists them); the command line wins.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence

from services.common.grpc_server import PortInUse, stop_event_on_signals
from services.common.hardening import make_non_dumpable
from services.common.logs import setup_logging, worker_id_var
from services.common.metrics import serve_metrics
from services.common.settings import load

from .agent import ModeMismatch, Worker
from .settings import WorkerSettings


async def _main(settings: WorkerSettings) -> None:
    stop = stop_event_on_signals()
    worker = Worker(settings)
    exporter = None
    if worker.metrics is not None:
        exporter = await serve_metrics(
            worker.metrics.registry, settings.metrics_host, settings.metrics_port, "worker"
        )
    try:
        await worker.run(stop)
    finally:
        if exporter is not None:
            await exporter.close()


def main(argv: Sequence[str] | None = None) -> None:
    make_non_dumpable()  # no same-user process (user code) reads our environment or memory
    settings = load(WorkerSettings, argv, os.environ, prog="faas-worker", description=__doc__)
    setup_logging("worker", settings.log_level, settings.log_json)
    worker_id_var.set(settings.worker_id)
    user = settings.task_user
    if user is not None:
        logging.getLogger(__name__).info(
            "task processes run as user %s (uid %d)", user.name, user.uid
        )
    elif os.geteuid() == 0:
        logging.getLogger(__name__).warning(
            "task processes run as root (--run-as %s): user code can signal this worker and "
            "read every file",
            settings.run_as,
        )
    try:
        asyncio.run(_main(settings))
    except ModeMismatch as exc:
        logging.getLogger(__name__).error("%s", exc)
        raise SystemExit(2) from None
    except PortInUse as exc:  # its metrics port: one line, not a traceback
        logging.getLogger(__name__).error("%s", exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
