"""Functions of the user's own modules run on workers that cannot import those modules.

Each test writes a module into a temporary directory, imports it here (the directory is put on
``sys.path`` of this process only) and registers its functions through the SDK or the CLI. The
workers run with the repository root as working directory and code path, where that module does
not exist: a pickle that refers to it by name fails there (``test_a_plain_dill_pickle_...``
shows it), so every test that passes shows the function travelled by value.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import dill
import grpc
import pytest
from faas import FaaSClient, FaaSExecutor
from faas.v1 import common_pb2

from services.launcher import Platform
from tests.support import GrpcClient

USER_MODULE = textwrap.dedent(
    """
    import functools
    import json
    import math

    SCALE = 10


    def plain(x):
        return x + 1


    def _helper(x):
        return x * SCALE


    def with_helper(x):
        return _helper(x) + math.floor(2.5)


    class Negative(ValueError):
        pass


    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y

        @classmethod
        def from_pair(cls, pair):
            return cls(*pair)

        def norm(self):
            if self.x < 0 or self.y < 0:
                raise Negative(f"negative coordinates {self.x}, {self.y}")
            return math.hypot(self.x, self.y)


    def with_class(x, y):
        return Point(x, y).norm()


    def traced(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return ["traced", fn(*args, **kwargs)]

        return wrapper


    @traced
    def decorated(x):
        return x * 3


    def with_stdlib(data):
        return json.dumps(data, sort_keys=True) + " " + str(math.sqrt(16))
    """
)


def import_from(folder: Path, name: str, source: str) -> ModuleType:
    """Writes ``folder/name.py`` and imports it in this process only."""
    (folder / f"{name}.py").write_text(source)
    sys.path.insert(0, str(folder))
    try:
        importlib.invalidate_caches()
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


@pytest.fixture(scope="module")
def mylib(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The user's module, under a fresh name, that no worker can import."""
    name = f"mylib_{uuid.uuid4().hex[:8]}"
    module = import_from(tmp_path_factory.mktemp("usercode"), name, USER_MODULE)
    yield module
    sys.modules.pop(name, None)


class RegisterLog(grpc.aio.UnaryUnaryClientInterceptor):
    """Keeps the RegisterFunctionRequest messages a client sends."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    async def intercept_unary_unary(
        self,
        continuation: Callable[[Any, Any], Awaitable[Any]],
        details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = details.method
        name = method.decode() if isinstance(method, bytes) else str(method)
        if name.endswith("/RegisterFunction"):
            self.requests.append(request)
        return await continuation(details, request)


@pytest.fixture
def log() -> RegisterLog:
    return RegisterLog()


@pytest.fixture
def client(shared_platform: Platform, log: RegisterLog) -> Iterator[FaaSClient]:
    with FaaSClient(shared_platform.gateway_target, interceptors=[log]) as faas_client:
        yield faas_client


def run(client: FaaSClient, fn: Callable[..., Any], *args: Any) -> Any:
    return client.submit(client.register(fn), *args).result(timeout=120)


def test_a_plain_dill_pickle_of_the_module_fails_on_the_workers(
    shared_platform: Platform, mylib: ModuleType
) -> None:
    """The premise: the workers cannot import the module, so a reference to it fails there."""
    grpc_client = GrpcClient(shared_platform)
    try:
        function_id = grpc_client.register(mylib.plain)
        [state] = grpc_client.wait_all(grpc_client.submit(function_id, [(1,)]), timeout=120)
    finally:
        grpc_client.channel.close()
    assert state.status == common_pb2.TASK_STATUS_FAILED
    assert mylib.__name__ in state.error.message + state.error.traceback


def test_module_level_function_runs_and_says_how_it_was_pickled(
    client: FaaSClient, log: RegisterLog, mylib: ModuleType
) -> None:
    function_id = client.register(mylib.plain)
    assert client.submit(function_id, 41).result(timeout=120) == 42
    [request] = log.requests
    assert request.runtime.python_version == "{}.{}.{}".format(*sys.version_info[:3])
    assert request.runtime.dill_version == dill.__version__
    assert request.runtime.serializer == "cloudpickle"
    assert request.runtime.cloudpickle_version
    assert mylib.__name__.encode() in request.payload  # __module__ kept, as a plain string
    assert request.name == "plain"
    recorded = client.get_function(function_id)  # what the gateway read from the pickle
    assert (recorded.by_reference, recorded.module) == (False, "")
    assert recorded.runtime.serializer == "cloudpickle" and recorded.runtime.pickle_protocol == 5


def test_function_with_a_same_module_helper_and_constant(
    client: FaaSClient, mylib: ModuleType
) -> None:
    assert run(client, mylib.with_helper, 4) == 42


def test_class_method_and_function_using_a_same_module_class(
    client: FaaSClient, mylib: ModuleType
) -> None:
    assert run(client, mylib.with_class, 3, 4) == 5.0
    point = run(client, mylib.Point.from_pair, (6, 8))
    assert (type(point).__name__, point.x, point.y, point.norm()) == ("Point", 6, 8, 10.0)
    with pytest.raises(ValueError, match="negative coordinates -1, 2") as raised:
        run(client, mylib.with_class, -1, 2)
    assert type(raised.value).__name__ == "Negative"  # the module's own exception class


def test_decorated_function(client: FaaSClient, mylib: ModuleType) -> None:
    assert mylib.decorated.__name__ == "decorated"  # functools.wraps: it looks like the original
    assert run(client, mylib.decorated, 5) == ["traced", 15]


def test_installed_modules_stay_references(client: FaaSClient, mylib: ModuleType) -> None:
    assert run(client, mylib.with_stdlib, {"b": 1, "a": 2}) == '{"a": 2, "b": 1} 4.0'
    function_id = client.register(json.dumps)
    assert client.submit(function_id, [1]).result(timeout=120) == "[1]"
    recorded = client.get_function(function_id)  # json.dumps itself goes by reference
    assert (recorded.by_reference, recorded.module, recorded.qualname) == (True, "json", "dumps")


def test_executor_ships_the_module_by_value(shared_platform: Platform, mylib: ModuleType) -> None:
    with FaaSExecutor(shared_platform.gateway_target) as executor:
        assert list(executor.map(mylib.with_helper, [0, 1, 2])) == [2, 12, 22]
        assert executor.submit(mylib.decorated, 2).result(timeout=120) == ["traced", 6]


TASKS = textwrap.dedent(
    """
    from shapes import area

    UNITS = "cm2"

    def total(width, height):
        return f"{area(width, height)} {UNITS}"
    """
)

SHAPES = "def area(width, height):\n    return width * height\n"


def faas(*args: str, cwd: Path, target: str) -> subprocess.CompletedProcess[str]:
    """``python -m faas ARGS`` as a user runs it, from ``cwd``."""
    env = {**os.environ, "FAAS_TARGET": target}
    return subprocess.run(
        [sys.executable, "-m", "faas", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("where", ["next to the file", "from another directory"])
def test_cli_registers_a_file_that_imports_its_sibling(
    shared_platform: Platform, tmp_path: Path, where: str
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "tasks.py").write_text(TASKS)
    (project / "shapes.py").write_text(SHAPES)
    cwd, spec = (project, "tasks.py:total")
    if where == "from another directory":
        cwd, spec = (tmp_path, "project/tasks.py:total")
    target = shared_platform.gateway_target

    registered = faas("register", spec, "--json", cwd=cwd, target=target)
    assert registered.returncode == 0, registered.stderr
    function_id = json.loads(registered.stdout)["function_id"]
    executed = faas(
        "execute", function_id, "--args", "[2, 3]", "--wait", "--json", cwd=cwd, target=target
    )
    assert executed.returncode == 0, executed.stdout + executed.stderr
    assert json.loads(executed.stdout)["result"] == "6 cm2"
