"""How a child finds users' modules, and what it says when a payload names one it cannot import.

A function pickled by reference (plain ``dill.dumps`` of a function in ``mylib``) holds only
``mylib double``: unpickling imports ``mylib``, which works only where ``mylib`` is on
``sys.path``. The child puts the pool's code path there first; when an import still fails, the
job fails with a cause of its own and a line that names the module and says what to do.
Imported by the children, so it stays light.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from typing import Any

import dill

__all__ = ["NotImportable", "code_path_entries", "loads", "normalized_code_path", "use_code_path"]

_HOW = "--code-path / FAAS_CODE_PATH"


def code_path_entries(code_path: str) -> tuple[str, ...]:
    """The directories of an ``os.pathsep``-separated code path, made absolute (against the
    working directory now), in order, each once; empty entries are skipped."""
    entries = (os.path.abspath(part) for part in code_path.split(os.pathsep) if part.strip())
    return tuple(dict.fromkeys(entries))


def normalized_code_path(code_path: str) -> str:
    """A code path with each folder made absolute, in order, each once (for settings)."""
    return os.pathsep.join(code_path_entries(code_path))


def use_code_path(code_path: Sequence[str]) -> None:
    """Puts ``code_path`` at the front of ``sys.path``, in order, each entry once."""
    entries = list(dict.fromkeys(code_path))
    sys.path[:] = [*entries, *(path for path in sys.path if path not in entries)]


class NotImportable(Exception):
    """A payload refers to ``module`` (and ``name`` in it), which cannot be imported here.

    ``error`` is what the import raised. ``explain`` gives the one-line message.
    """

    def __init__(self, module: str, name: str, error: BaseException) -> None:
        super().__init__(f"{module}.{name}" if name else module)
        self.module = module
        self.name = name
        self.error = error

    def explain(self, what: str, code_path: Sequence[str]) -> str:
        """The message for ``what`` ("function" or "arguments") on a child with ``code_path``."""
        where = f"code path: {os.pathsep.join(code_path) or 'none'}"
        module, error = self.module, self.error
        if isinstance(error, AttributeError):
            return (
                f"{what} pickled by reference to '{module}.{self.name}', but module '{module}' "
                f"on this worker has no '{self.name}' ({where}); register it by value (the SDK "
                f"does) or put the same version of {module} on the workers' code path ({_HOW})"
            )
        missing = getattr(error, "name", None)
        if isinstance(error, ModuleNotFoundError) and missing and _within(module, missing):
            return (
                f"{what} pickled by reference to module '{module}', which this worker cannot "
                f"import ({where}); register it by value (the SDK does) or put {module} on the "
                f"workers' code path ({_HOW})"
            )
        return (
            f"{what} pickled by reference to module '{module}', which this worker cannot "
            f"import: {type(error).__name__}: {_first_line(error)} ({where}); install what "
            f"{module} needs on the workers, or register it by value (the SDK does)"
        )


def _within(module: str, package: str) -> bool:
    """Whether ``package`` is ``module`` or one of the packages it is in."""
    return module == package or module.startswith(package + ".")


def _first_line(error: BaseException) -> str:
    try:
        text = str(error)
    except Exception:
        return "<str() failed>"
    return text.splitlines()[0] if text else ""


class _Unpickler(dill.Unpickler):  # type: ignore[misc]
    """dill's unpickler; a global it cannot import raises ``NotImportable`` naming it."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except ImportError as exc:
            raise NotImportable(module, name, exc) from exc
        except AttributeError as exc:
            if module in sys.modules:  # the module imported, but has no such attribute
                raise NotImportable(module, name, exc) from exc
            raise


def loads(payload: bytes) -> Any:
    """``dill.loads(payload)``; raises ``NotImportable`` when it refers to a module that does
    not import here (whether by a global or by dill's own import of a module)."""
    try:
        return _Unpickler(io.BytesIO(payload)).load()
    except NotImportable:
        raise
    except ImportError as exc:  # e.g. dill's _import_module of a module the pickle refers to
        if exc.name:
            raise NotImportable(exc.name, "", exc) from exc
        raise
