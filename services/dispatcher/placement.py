"""What a task needs of a worker, whether a worker has it, and why none does: pure logic.

A task runs only on a worker whose labels have the task's values exactly, whose resources are at
least the task's amounts, and whose Python major.minor is the function's (unless the placement
says ``any_python``, or the function recorded no runtime, as plain dill clients over REST may).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from faas.v1 import common_pb2

from services.common.runtime import python_minor

__all__ = ["ANY", "Needs", "Offer", "unmet"]


@dataclass(frozen=True, slots=True)
class Offer:
    """What one worker offers: its labels, resources and Python major.minor ("" unknown)."""

    labels: Mapping[str, str]
    resources: Mapping[str, float]
    python: str


@dataclass(frozen=True, slots=True)
class Needs:
    """What a task needs of a worker; hashable, so tasks with the same needs queue together."""

    labels: tuple[tuple[str, str], ...] = ()
    resources: tuple[tuple[str, float], ...] = ()
    python: str = ""  # "3.11": the function's major.minor; "": any Python

    @classmethod
    def of(
        cls, placement: common_pb2.Placement | None, runtime: common_pb2.Runtime | None
    ) -> Needs:
        """The needs of a task with this (merged) placement, of a function with this runtime."""
        python = "" if runtime is None else python_minor(runtime.python_version)
        if placement is None:
            return cls(python=python)
        return cls(
            labels=tuple(sorted(placement.labels.items())),
            resources=tuple(sorted((k, v) for k, v in placement.resources.items() if v > 0)),
            python="" if placement.any_python else python,
        )

    def fits(self, offer: Offer) -> bool:
        if self.python and offer.python != self.python:
            return False
        if any(offer.labels.get(k) != v for k, v in self.labels):
            return False
        return all(offer.resources.get(k, 0.0) >= v for k, v in self.resources)

    def describe(self) -> str:
        parts = [f"label {k}={v}" for k, v in self.labels]
        parts += [f"resource {k}>={v:g}" for k, v in self.resources]
        if self.python:
            parts.append(f"Python {self.python}")
        return ", ".join(parts) or "nothing"


ANY = Needs()


def unmet(needs: Needs, offers: Iterable[Offer]) -> str:
    """Why no worker offering one of ``offers`` can take a task; "" when one can.

    Names each need that no connected worker meets, or, when each is met by some worker but
    none meets them all, the whole set.
    """
    offers = list(offers)
    if not offers:
        return "no worker is connected"
    if any(needs.fits(o) for o in offers):
        return ""
    reasons = []
    for key, value in needs.labels:
        if not any(o.labels.get(key) == value for o in offers):
            reasons.append(f"no connected worker has label {key}={value}")
    for key, amount in needs.resources:
        most = max(o.resources.get(key, 0.0) for o in offers)
        if most < amount:
            reasons.append(
                f"no connected worker has {amount:g} of resource {key} (the most is {most:g})"
            )
    if needs.python and not any(o.python == needs.python for o in offers):
        running = sorted({o.python or "unknown" for o in offers})
        reasons.append(f"no worker runs Python {needs.python} (connected: {', '.join(running)})")
    if not reasons:
        reasons.append(f"no connected worker has all of: {needs.describe()}")
    return "; ".join(reasons)
