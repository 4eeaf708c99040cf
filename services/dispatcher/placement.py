"""What a task needs of a worker, whether a worker has it, and why none does: pure logic.

A task runs only on a worker whose labels have the task's values exactly, whose resources are at
least the task's amounts, and whose Python major.minor is the function's (unless the placement
says ``any_python``, or the function recorded no runtime, as plain dill clients over REST may).
A function pickled with cloudpickle runs only where the same cloudpickle major.minor is installed
(unless ``any_python``): cloudpickle promises only that a pickle loads under its own version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from faas.v1 import common_pb2

from services.common.runtime import python_minor

__all__ = ["ANY", "Needs", "Offer", "unmet"]


@dataclass(frozen=True, slots=True)
class Offer:
    """What one worker offers: its labels, resources, Python major.minor ("" unknown) and
    cloudpickle major.minor ("": none installed; None: not told, so not checked)."""

    labels: Mapping[str, str]
    resources: Mapping[str, float]
    python: str
    cloudpickle: str | None = None

    @classmethod
    def of(
        cls, labels: Mapping[str, str], resources: Mapping[str, float], runtime: common_pb2.Runtime
    ) -> Offer:
        """The offer of a worker with these labels and resources that runs ``runtime``."""
        return cls(
            labels,
            resources,
            python_minor(runtime.python_version),
            python_minor(runtime.cloudpickle_version),
        )


@dataclass(frozen=True, slots=True)
class Needs:
    """What a task needs of a worker; hashable, so tasks with the same needs queue together."""

    labels: tuple[tuple[str, str], ...] = ()
    resources: tuple[tuple[str, float], ...] = ()
    python: str = ""  # "3.11": the function's major.minor; "": any Python
    cloudpickle: str = ""  # "3.1": the cloudpickle major.minor it was pickled with; "": any

    @classmethod
    def of(
        cls, placement: common_pb2.Placement | None, runtime: common_pb2.Runtime | None
    ) -> Needs:
        """The needs of a task with this (merged) placement, of a function with this runtime."""
        python = cloudpickle = ""
        if runtime is not None:
            python = python_minor(runtime.python_version)
            if runtime.serializer == "cloudpickle":
                cloudpickle = python_minor(runtime.cloudpickle_version)
        if placement is None:
            return cls(python=python, cloudpickle=cloudpickle)
        anywhere = placement.any_python
        return cls(
            labels=tuple(sorted(placement.labels.items())),
            resources=tuple(sorted((k, v) for k, v in placement.resources.items() if v > 0)),
            python="" if anywhere else python,
            cloudpickle="" if anywhere else cloudpickle,
        )

    def _loads(self, offer: Offer) -> bool:
        """Whether the offer's cloudpickle (when told) loads this task's pickle."""
        return not self.cloudpickle or offer.cloudpickle in (None, self.cloudpickle)

    def fits(self, offer: Offer) -> bool:
        if self.python and offer.python != self.python:
            return False
        if not self._loads(offer):
            return False
        if any(offer.labels.get(k) != v for k, v in self.labels):
            return False
        return all(offer.resources.get(k, 0.0) >= v for k, v in self.resources)

    def describe(self) -> str:
        parts = [f"label {k}={v}" for k, v in self.labels]
        parts += [f"resource {k}>={v:g}" for k, v in self.resources]
        if self.python:
            parts.append(f"Python {self.python}")
        if self.cloudpickle:
            parts.append(f"cloudpickle {self.cloudpickle}")
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
    if needs.cloudpickle and not any(needs._loads(o) for o in offers):
        found = sorted({o.cloudpickle or "none" for o in offers})
        reasons.append(
            f"no worker runs cloudpickle {needs.cloudpickle}, which the function was pickled "
            f"with (connected: {', '.join(found)}); a cloudpickle pickle loads only under its "
            "own version"
        )
    if not reasons:
        reasons.append(f"no connected worker has all of: {needs.describe()}")
    return "; ".join(reasons)
