"""The platform that a suite in the course's style expects: its REST API at 127.0.0.1:8000.

The course's testing report runs ``pytest tests`` from the repo root against
http://127.0.0.1:8000/, with its functions defined at module level in test modules directly under
tests/ (as tests/test_webservice.py). Plain dill pickles those functions by reference
(``tests.test_webservice double``), so the workers run with the repo root as their working
directory and code path, where ``tests`` imports. The platform starts when the first such test
runs, once for the session, and stops at the end; tests/unit and tests/integration start their
own platforms and never start this one.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.launcher import Platform, PlatformConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = REPO_ROOT / "tests"
REST_HOST = "127.0.0.1"
REST_PORT = 8000


def _needs_course_platform(item: pytest.Item) -> bool:
    """Whether the test is in a module directly under tests/ (not tests/unit, tests/integration)."""
    return item.path.parent == TESTS_DIR


def _require_rest_port_free() -> None:
    """Fails with a one-line reason when something already listens on the course's port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the shim binds it
        try:
            probe.bind((REST_HOST, REST_PORT))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
        else:
            return
    pytest.fail(
        f"the tests directly under tests/ start the platform with its REST API at "
        f"http://{REST_HOST}:{REST_PORT}/, but port {REST_PORT} on {REST_HOST} is already taken "
        f"by another process (a `make run`?): stop it and run the tests again",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def course_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The whole platform with the REST shim on 127.0.0.1:8000, run from the repo root."""
    _require_rest_port_free()
    root = tmp_path_factory.mktemp("course-platform")
    platform = Platform(
        PlatformConfig(
            mode="push",
            worker_processes=2,
            workers=1,
            host=REST_HOST,
            rest_port=REST_PORT,
            gateway_port=0,
            dispatcher_port=0,
            data_dir=root / "data",
            log_dir=root / "logs",
            extra_env={"FAAS_CODE_PATH": str(REPO_ROOT)},  # workers import `tests` from here
        )
    )
    # And every process starts in the repo root, as `make run` from a clone does.
    with contextlib.chdir(REPO_ROOT):
        platform.start()
    yield platform
    platform.stop()


@pytest.fixture(autouse=True)
def _course_platform_for_top_level_tests(request: pytest.FixtureRequest) -> None:
    """Starts course_platform (once) for a test in a module directly under tests/."""
    if _needs_course_platform(request.node):
        request.getfixturevalue("course_platform")
