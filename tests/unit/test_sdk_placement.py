"""The SDK's placement keywords as the Placement message it sends (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from faas.client import _placement
from faas.v1 import common_pb2


def test_nothing_asked_sends_no_placement() -> None:
    assert _placement(None, None) is None
    assert _placement({}, {}) is None


def test_labels_resources_and_any_python() -> None:
    sent = _placement({"gpu": "h200"}, {"gpu": 1, "mem": 2.5}, any_python=True)
    assert sent == common_pb2.Placement(
        labels={"gpu": "h200"}, resources={"gpu": 1.0, "mem": 2.5}, any_python=True
    )
    assert _placement(None, None, any_python=True) == common_pb2.Placement(any_python=True)


@pytest.mark.parametrize(
    ("labels", "resources", "word"),
    [
        ({"gpu": 1}, None, "labels"),
        ({1: "x"}, None, "labels"),
        (None, {"gpu": "one"}, "resources"),
        (None, {"gpu": True}, "resources"),
        (None, {2: 1.0}, "resources"),
    ],
)
def test_bad_types_are_a_type_error_naming_the_keyword(
    labels: Any, resources: Any, word: str
) -> None:
    with pytest.raises(TypeError, match=word):
        _placement(labels, resources)
