"""The gateway's opcode walk tells a bare reference (module and qualname) from code by value."""

from __future__ import annotations

import pickle
import sys
import types
from collections.abc import Iterator

import dill
import pytest

from services.gateway.pickle_scan import scan

_MODULE = "faas_scan_test_module"


@pytest.fixture
def module() -> Iterator[types.ModuleType]:
    """A module of the user's own, importable here (so dill pickles it by reference)."""
    mod = types.ModuleType(_MODULE)
    source = (
        "def double(x):\n    return 2 * x\n"
        "class Outer:\n"
        "    class Inner:\n"
        "        @staticmethod\n"
        "        def run():\n            return 1\n"
        "    def method(self):\n        return 2\n"
    )
    exec(source, mod.__dict__)
    sys.modules[_MODULE] = mod
    yield mod
    del sys.modules[_MODULE]


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_a_module_function_is_a_bare_reference(module: types.ModuleType, protocol: int) -> None:
    result = scan(dill.dumps(module.double, protocol=protocol))
    assert (result.reason, result.refers_to_code) == ("", True)
    assert (result.by_reference, result.module, result.qualname) == (True, _MODULE, "double")


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_a_nested_qualname_is_one_reference(module: types.ModuleType, protocol: int) -> None:
    # Protocol 4+ writes "Outer.Inner.run" at once; older ones getattr(getattr(Outer, ...)).
    result = scan(dill.dumps(module.Outer.Inner.run, protocol=protocol))
    assert (result.by_reference, result.module, result.qualname) == (
        True,
        _MODULE,
        "Outer.Inner.run",
    )


def test_the_protocol_is_read_from_the_stream(module: types.ModuleType) -> None:
    for protocol in (2, 3, 4, 5):
        assert scan(pickle.dumps(module.double, protocol=protocol)).protocol == protocol
    assert scan(pickle.dumps(module.double, protocol=0)).protocol == 0  # no PROTO opcode
    assert scan(dill.dumps(module.double)).protocol == dill.settings["protocol"]


def test_a_builtin_is_a_reference_too() -> None:
    result = scan(dill.dumps(len))
    assert (result.by_reference, result.module, result.qualname) == (True, "builtins", "len")


def test_code_by_value_is_not_a_reference(module: types.ModuleType) -> None:
    def nested(x: int) -> int:
        return x + 1

    for fn in (nested, lambda: 1, module.Outer().method, dill.loads(dill.dumps(nested))):
        result = scan(dill.dumps(fn))
        assert (result.reason, result.refers_to_code) == ("", True)
        assert (result.by_reference, result.module, result.qualname) == (False, "", "")


def test_values_are_not_references(module: types.ModuleType) -> None:
    for value in (5, "mod name", [module.double], (module.double, 1), {"f": len}):
        result = scan(dill.dumps(value))
        assert result.reason == ""
        assert not result.by_reference


def test_a_malformed_stream_is_no_reference() -> None:
    result = scan(dill.dumps(len)[:-1])
    assert result.reason == "PAYLOAD_NOT_PICKLE"
    assert not result.by_reference
