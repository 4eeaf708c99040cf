"""Placement's cloudpickle rule: a cloudpickle pickle loads only under its own cloudpickle
major.minor, so it goes only to workers that run that version (pure logic, no I/O)."""

from __future__ import annotations

import pytest
from faas.v1 import common_pb2

from services.dispatcher.placement import Needs, Offer, unmet


def _function(
    serializer: str = "cloudpickle", cloudpickle: str = "3.1.1", python: str = "3.11.7"
) -> common_pb2.Runtime:
    return common_pb2.Runtime(
        python_version=python,
        dill_version="0.4.0",
        serializer=serializer,
        cloudpickle_version=cloudpickle,
    )


def _worker(cloudpickle: str = "3.1.0", python: str = "3.11.4", **labels: str) -> Offer:
    runtime = common_pb2.Runtime(
        python_version=python, dill_version="0.4.0", cloudpickle_version=cloudpickle
    )
    return Offer.of(labels, {}, runtime)


def test_an_offer_of_a_workers_runtime_has_its_python_and_cloudpickle_minor() -> None:
    offer = _worker("3.1.0", "3.11.4", zone="a")
    assert (offer.labels, offer.python, offer.cloudpickle) == ({"zone": "a"}, "3.11", "3.1")
    assert _worker("").cloudpickle == ""  # the worker has no cloudpickle


def test_a_cloudpickle_function_needs_its_cloudpickle_minor() -> None:
    assert Needs.of(None, _function()).cloudpickle == "3.1"
    assert Needs.of(common_pb2.Placement(labels={"a": "b"}), _function()).cloudpickle == "3.1"
    # Not cloudpickle, or no version recorded: no such need.
    assert Needs.of(None, _function("dill")).cloudpickle == ""
    assert Needs.of(None, _function("")).cloudpickle == ""
    assert Needs.of(None, _function(cloudpickle="")).cloudpickle == ""
    assert Needs.of(None, None).cloudpickle == ""
    # any_python lifts it, with the Python rule.
    anywhere = Needs.of(common_pb2.Placement(any_python=True), _function())
    assert (anywhere.python, anywhere.cloudpickle) == ("", "")


@pytest.mark.parametrize(
    ("function", "worker", "fits"),
    [
        (_function(cloudpickle="3.1.1"), _worker("3.1.0"), True),
        (_function(cloudpickle="3.1.1"), _worker("3.1.1"), True),
        (_function(cloudpickle="3.1.1"), _worker("3.0.0"), False),
        (_function(cloudpickle="3.1.1"), _worker("2.2.1"), False),
        (_function(cloudpickle="3.1.1"), _worker("3.10.0"), False),
        (_function(cloudpickle="3.1.1"), _worker(""), False),  # no cloudpickle at all
        (_function("dill", cloudpickle=""), _worker(""), True),
        (_function("dill", cloudpickle="3.1.1"), _worker("3.0.0"), True),  # dill made it
        (_function(cloudpickle=""), _worker("3.0.0"), True),  # version unknown: not checked
        # Same cloudpickle, another Python: the Python rule still holds.
        (_function(cloudpickle="3.1.1", python="3.12.1"), _worker("3.1.0"), False),
    ],
)
def test_a_cloudpickle_function_fits_only_a_worker_with_its_cloudpickle(
    function: common_pb2.Runtime, worker: Offer, fits: bool
) -> None:
    assert Needs.of(None, function).fits(worker) is fits


def test_any_python_runs_a_cloudpickle_function_anywhere() -> None:
    needs = Needs.of(common_pb2.Placement(any_python=True), _function(python="3.12.1"))
    assert needs.fits(_worker("2.2.1")) and needs.fits(_worker(""))


def test_an_offer_built_without_a_runtime_is_not_checked_for_cloudpickle() -> None:
    # Offer(labels, resources, python): the caller did not say which cloudpickle it runs.
    assert Needs.of(None, _function()).fits(Offer({}, {}, "3.11"))


def test_needs_differing_in_cloudpickle_queue_apart() -> None:
    a, b = Needs.of(None, _function(cloudpickle="3.1.1")), Needs.of(None, _function())
    c = Needs.of(None, _function(cloudpickle="3.0.0"))
    assert a == b and hash(a) == hash(b) and a != c
    assert a.describe() == "Python 3.11, cloudpickle 3.1"


def test_the_pending_reason_names_the_cloudpickle_version() -> None:
    needs = Needs.of(None, _function(cloudpickle="3.1.1"))
    workers = [_worker("3.0.0"), _worker(""), _worker("3.0.2")]
    assert unmet(needs, workers) == (
        "no worker runs cloudpickle 3.1, which the function was pickled with "
        "(connected: 3.0, none); a cloudpickle pickle loads only under its own version"
    )
    assert unmet(needs, [*workers, _worker("3.1.0")]) == ""


def test_the_pending_reason_when_python_and_cloudpickle_are_each_met_but_not_together() -> None:
    needs = Needs.of(None, _function(cloudpickle="3.1.1", python="3.11.0"))
    workers = [_worker("3.1.0", python="3.12.0"), _worker("3.0.0", python="3.11.0")]
    assert unmet(needs, workers) == ("no connected worker has all of: Python 3.11, cloudpickle 3.1")
