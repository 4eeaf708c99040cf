"""The gateway's placement checks and merge (pure functions, no I/O)."""

from __future__ import annotations

import math

import pytest
from faas.v1 import common_pb2

from services.common.errors import InvalidArgument
from services.gateway.convert import merged_placement, placement_arg


def test_the_execution_adds_to_the_functions_placement() -> None:
    function = common_pb2.Placement(
        labels={"gpu": "h200", "zone": "a"}, resources={"gpu": 1, "mem": 4}
    )
    execution = common_pb2.Placement(labels={"zone": "b"}, resources={"gpu": 2}, any_python=True)
    merged = merged_placement(function, execution)
    assert dict(merged.labels) == {"gpu": "h200", "zone": "b"}
    assert dict(merged.resources) == {"gpu": 2.0, "mem": 4.0}
    assert merged.any_python
    assert dict(function.labels) == {"gpu": "h200", "zone": "a"}  # left as it was
    only_any = merged_placement(common_pb2.Placement(any_python=True), common_pb2.Placement())
    assert only_any.any_python and not only_any.labels


@pytest.mark.parametrize(
    "placement",
    [
        common_pb2.Placement(resources={"gpu": -1}),
        common_pb2.Placement(resources={"gpu": math.inf}),
        common_pb2.Placement(resources={"gpu": math.nan}),
        common_pb2.Placement(labels={"": "x"}),
        common_pb2.Placement(resources={"": 1}),
        common_pb2.Placement(labels={"k": "v" * 257}),
        common_pb2.Placement(labels={f"k{i}": "v" for i in range(65)}),
    ],
)
def test_a_bad_placement_is_invalid_argument(placement: common_pb2.Placement) -> None:
    with pytest.raises(InvalidArgument) as caught:
        placement_arg(placement)
    assert caught.value.reason == "INVALID_PLACEMENT"


def test_a_good_placement_passes() -> None:
    placement_arg(common_pb2.Placement(labels={"gpu": "h200"}, resources={"gpu": 0, "mem": 2.5}))
