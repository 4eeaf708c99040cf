"""The SDK's placement keywords as the Placement message it sends (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from faas.cli import build_parser
from faas.cli._inputs import UsageError, parse_labels, parse_resources
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


def test_cli_placement_flags_parse_like_the_workers() -> None:
    args = build_parser().parse_args(
        [
            "register",
            "t.py:f",
            "--label",
            "gpu=h200,zone=a",
            "--label",
            " site = x ",
            "--any-python",
        ]
    )
    assert parse_labels(args.label) == {"gpu": "h200", "zone": "a", "site": "x"}
    assert args.any_python is True and parse_resources(args.resource) == {}
    args = build_parser().parse_args(["execute", "f", "--resource", "gpu=1", "--resource", "m=.5"])
    assert parse_resources(args.resource) == {"gpu": 1.0, "m": 0.5}
    assert parse_labels(args.label) == {}
    assert build_parser().parse_args(["register", "t.py:f"]).any_python is False


@pytest.mark.parametrize(
    ("labels", "resources", "message"),
    [
        (["gpu"], None, "--label expects KEY=VALUE[,KEY=VALUE...], got 'gpu'"),
        (["=x"], None, "--label expects KEY=VALUE[,KEY=VALUE...], got '=x'"),
        (None, ["gpu=one"], "--resource gpu: not a number: 'one'"),
        (None, ["gpu=-1"], "--resource gpu: must be a finite number >= 0, got '-1'"),
        (None, ["gpu=inf"], "--resource gpu: must be a finite number >= 0, got 'inf'"),
    ],
)
def test_cli_bad_placement_flags_are_usage_errors(
    labels: list[str] | None, resources: list[str] | None, message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        parse_labels(labels)
        parse_resources(resources)
    assert str(caught.value) == message
