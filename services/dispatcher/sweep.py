"""Finding stranded tasks: RUNNING in Redis under an attempt that nothing in the dispatcher holds.

A write to Redis that times out is of unknown outcome, and a bug or a crash between a write and
the bookkeeping that follows it could leave a task RUNNING under an attempt no worker runs. The
sweep is the safety net behind every such path: an attempt that two sweeps in a row see RUNNING in
Redis and not held by any session, adoption, recovery or write under way is stranded, and the
dispatcher requeues it (which counts as one of the task's attempts). Pure bookkeeping, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from services.common.store import LostAttempt


class StrandedSweep:
    """Remembers the unheld attempts one sweep saw, so that the next can confirm them."""

    def __init__(self) -> None:
        self._suspects: dict[str, str] = {}  # task_id -> attempt_id, unheld at the last sweep

    def check(self, running: Mapping[str, str], held: Collection[str]) -> list[LostAttempt]:
        """Given task_id -> attempt_id of the RUNNING tasks, the attempts to requeue now.

        An attempt seen unheld for the first time becomes a suspect; one that is still unheld
        (and still current) at the next sweep is returned, and forgotten.
        """
        unheld = {t: a for t, a in running.items() if a not in held}
        stranded = [LostAttempt(t, a) for t, a in unheld.items() if self._suspects.get(t) == a]
        self._suspects = {t: a for t, a in unheld.items() if self._suspects.get(t) != a}
        return stranded
