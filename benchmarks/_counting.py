"""``python -m benchmarks._counting MODULE ARGS...``: run a service, counting its batch sizes.

Wraps the functions through which tasks move in batches (Redis scripts, stream messages,
pool hand-offs), runs ``MODULE`` as ``__main__`` and, at exit, writes per function how often it
was called and how many items its calls carried, to ``$BENCH_COUNTS_DIR/<service>.json``.
Items per call near 1 mean each task pays the fixed cost of a message or a round trip alone.
Used by ``python -m benchmarks.profiling --count``; it changes nothing in the services.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import json
import os
import runpy
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

_CALLS: Counter[str] = Counter()
_ITEMS: Counter[str] = Counter()


def _size(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return 1


def _sizes_first_arg(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return _size(args[1]) if len(args) > 1 else 1


def _wrap(
    module: str, qualname: str, measure: Callable[[tuple[Any, ...], dict[str, Any]], int]
) -> None:
    owner_name, _, attr = qualname.rpartition(".")
    owner: Any = importlib.import_module(module)
    try:
        for part in owner_name.split(".") if owner_name else []:
            owner = getattr(owner, part)
        original = getattr(owner, attr)
    except AttributeError:  # the code moved: count nothing rather than break the profile
        print(f"counting: {module}.{qualname} not found; not counted", file=sys.stderr)
        return
    key = f"{module.rsplit('.', 1)[-1]}.{qualname}"

    if _is_coroutine(original):

        @functools.wraps(original)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            _CALLS[key] += 1
            _ITEMS[key] += measure(args, kwargs)
            return await original(*args, **kwargs)

        setattr(owner, attr, async_wrapper)
    else:

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _CALLS[key] += 1
            _ITEMS[key] += measure(args, kwargs)
            return original(*args, **kwargs)

        setattr(owner, attr, wrapper)


def _is_coroutine(fn: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)


def _batch_attr(attr: str) -> Callable[[tuple[Any, ...], dict[str, Any]], int]:
    def measure(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        message = args[1] if len(args) > 1 else None
        return _size(getattr(message, attr, ())) if message is not None else 0

    return measure


_STORE = "services.common.store._store"
_TARGETS: dict[str, list[tuple[str, str, Callable[[tuple[Any, ...], dict[str, Any]], int]]]] = {
    "services.gateway": [
        (_STORE, "TaskStore.create_tasks", _sizes_first_arg),
        (_STORE, "TaskStore.get_task", lambda a, k: 1),
        ("services.gateway.waiters", "TaskWaiters.notify", lambda a, k: 1),
        ("services.gateway.dispatcher_link", "DispatcherLink.send", lambda a, k: 1),
        (
            "services.gateway.dispatcher_link",
            "DispatcherLink._flush",
            lambda a, k: _size(a[0]._pending),
        ),
    ],
    "services.dispatcher": [
        (_STORE, "TaskStore.start_attempts", _sizes_first_arg),
        (_STORE, "TaskStore.finish_attempts", _sizes_first_arg),
        ("services.dispatcher.core", "Dispatcher.submit", _sizes_first_arg),
        ("services.dispatcher.core", "Dispatcher._deliver", lambda a, k: _size(a[2])),
        ("services.dispatcher.core", "Dispatcher.report", lambda a, k: _size(a[2])),
        ("services.dispatcher.events", "GatewayEvents._flush", lambda a, k: _size(a[0]._events)),
        ("services.dispatcher.scheduler", "Scheduler.plan", lambda a, k: a[0].queued_count()),
    ],
    "services.worker": [
        (
            "services.worker.agent",
            "Worker._on_message",
            lambda a, k: _size(a[1].assignments.assignments),
        ),
        (
            "services.worker.agent",
            "Worker._flush",
            lambda a, k: _size(a[0]._outgoing) + _size(a[0]._starts),
        ),
        ("services.worker.agent", "Worker._request_work", lambda a, k: a[1] if len(a) > 1 else 1),
    ],
}


def _dump(service: str) -> None:
    folder = os.environ.get("BENCH_COUNTS_DIR")
    if not folder:
        return
    data = {key: {"calls": _CALLS[key], "items": _ITEMS[key]} for key in sorted(_CALLS)}
    Path(folder, f"{service}.json").write_text(json.dumps(data, indent=2))


def main() -> None:
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    service = module.split(".")[1] if module.startswith("services.") else module
    for target_module, qualname, measure in _TARGETS.get(module, []):
        _wrap(target_module, qualname, measure)
    if module == "services.dispatcher":
        _wrap("services.dispatcher.local", "LocalWorker._flush", lambda a, k: _size(a[0]._outcomes))
        _wrap(
            "services.dispatcher.local",
            "LocalWorker._deliver",
            lambda a, k: _size(a[1].assignments),
        )
    atexit.register(_dump, service)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
