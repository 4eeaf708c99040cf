"""The CLI's subcommands: each takes the parsed arguments and a ``Session``; an exit code."""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib
import itertools
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .._futures import TaskFuture
from .._models import FunctionInfo, TaskInfo
from ..client import FaaSClient
from ..errors import FaaSError, FaaSTimeout
from . import _inputs, _output
from ._certs import certs
from ._exit import FAILED, NOT_FOUND, OK, TIMEOUT, USAGE
from ._inputs import UsageError
from ._progress import Progress

__all__ = ["COMMANDS", "Session"]


@dataclass
class Session:
    """What every command shares: the gateway, output style and streams."""

    target: str
    json: bool
    retries: int
    api_key: str | None = None
    # --tls-ca, --tls-client-cert, --tls-client-key (None: their variables, see faas._tls)
    tls: tuple[str | None, str | None, str | None] = (None, None, None)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    _client: FaaSClient | None = None

    @property
    def client(self) -> FaaSClient:
        if self._client is None:
            ca, cert, key = self.tls
            self._client = FaaSClient(
                self.target,
                retries=self.retries,
                api_key=self.api_key,
                tls_ca=ca,
                tls_cert=cert,
                tls_key=key,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def out(self, text: str) -> None:
        print(text, file=self.stdout, flush=True)

    def document(self, value: Any) -> None:
        self.out(_output.dumps(value))

    def note(self, text: str) -> None:
        print(f"faas: {text}", file=self.stderr, flush=True)

    def traceback(self, info: TaskInfo) -> None:
        """A FAILED task's remote traceback, on stderr (``--json`` has it in ``error``)."""
        if info.traceback.strip():
            print(info.traceback.rstrip("\n"), file=self.stderr, flush=True)


def up(args: argparse.Namespace, session: Session) -> int:
    """Starts the whole platform (the launcher's own options follow ``up``)."""
    try:
        launcher = importlib.import_module("services.launcher.__main__")
    except ImportError as exc:
        raise FaaSError(
            f"`faas up` needs the server extra (pip install 'mpcsfaas[server]'): {exc}"
        ) from None
    launcher.main(list(args.launcher_args))
    return OK


def tokens(args: argparse.Namespace, session: Session) -> int:
    """Issues, lists and revokes the tokens of workers and gateways (a tokens file, no gateway)."""
    try:
        enrollment = importlib.import_module("services.common.enrollment")
    except ImportError as exc:
        raise FaaSError(
            f"`faas tokens` needs the server extra (pip install 'mpcsfaas[server]'): {exc}"
        ) from None
    store = enrollment.TokenFile(args.tokens_file)
    try:
        if args.action == "issue":
            token = store.issue(args.id, args.role)
            if session.json:
                session.document({"id": args.id, "role": args.role, "token": token})
            else:
                session.out(token)
                session.note(
                    f"{args.role} {args.id} enrolled in {args.tokens_file}; the token is "
                    "shown once, only its hash is kept"
                )
        elif args.action == "revoke":
            if not store.revoke(args.id):
                session.note(f"{args.id} is not enrolled in {args.tokens_file}")
                return NOT_FOUND
            session.note(f"{args.id} revoked: its streams close within a second")
        else:
            rows = [{"id": c.id, "role": c.role, "created": c.created} for c in store.credentials()]
            if session.json:
                session.document(rows)
            else:
                for row in rows:
                    created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["created"]))
                    session.out(f"{row['id']}\t{row['role']}\t{created}")
    except enrollment.EnrollmentError as exc:
        session.note(str(exc))
        return USAGE
    return OK


def keys(args: argparse.Namespace, session: Session) -> int:
    """Issues, lists and revokes the API keys of clients (a keys file, no gateway)."""
    try:
        enrollment = importlib.import_module("services.common.enrollment")
    except ImportError as exc:
        raise FaaSError(
            f"`faas keys` needs the server extra (pip install 'mpcsfaas[server]'): {exc}"
        ) from None
    store = enrollment.TokenFile(args.keys_file)
    try:
        if args.action == "issue":
            key = store.issue(args.id, "client", tenant=args.tenant)
            if session.json:
                session.document({"name": args.id, "tenant": args.tenant, "key": key})
            else:
                session.out(key)
                session.note(
                    f"key {args.id} of tenant {args.tenant} added to {args.keys_file}; it is "
                    "shown once, only its hash is kept"
                )
        elif args.action == "revoke":
            known = {c.id for c in store.credentials() if c.role == "client"}
            if args.id not in known or not store.revoke(args.id):
                session.note(f"no key {args.id} in {args.keys_file}")
                return NOT_FOUND
            session.note(f"key {args.id} revoked: the gateway refuses it from now on")
        else:
            rows = [
                {"name": c.id, "tenant": c.tenant, "created": c.created}
                for c in store.credentials()
                if c.role == "client"
            ]
            if session.json:
                session.document(rows)
            else:
                for row in rows:
                    created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["created"]))
                    session.out(f"{row['name']}\t{row['tenant']}\t{created}")
    except enrollment.EnrollmentError as exc:
        session.note(str(exc))
        return USAGE
    return OK


def register(args: argparse.Namespace, session: Session) -> int:
    needs = _needs(args)
    fn = _inputs.load_function(args.spec)
    name = args.name or args.spec.rpartition(":")[2]
    function_id = session.client.register(
        fn, name, timeout=args.timeout, any_python=args.any_python, **needs
    )
    if session.json:
        session.document({"function_id": function_id, "name": name})
    else:
        session.out(function_id)
    return OK


def _needs(args: argparse.Namespace) -> dict[str, Any]:
    """``--label`` and ``--resource`` as the client's ``labels=`` and ``resources=``."""
    return {
        "labels": _inputs.parse_labels(args.label),
        "resources": _inputs.parse_resources(args.resource),
    }


def execute(args: argparse.Namespace, session: Session) -> int:
    needs = _needs(args)
    if args.args_file is not None:
        if args.args is not None or args.kwargs is not None:
            raise _inputs.UsageError("--args-file cannot be combined with --args or --kwargs")
        return _execute_batch(args, session, needs)
    positional = _inputs.parse_args(args.args)
    keywords = _inputs.parse_kwargs(args.kwargs)
    task_id = session.client.execute(
        args.function_id, positional, keywords, timeout=args.timeout, **needs
    )
    if not args.wait:
        session.document({"task_id": task_id}) if session.json else session.out(task_id)
        return OK
    return _report(session, _wait_one(session.client.future(task_id), args.wait_timeout, session))


def _execute_batch(args: argparse.Namespace, session: Session, needs: dict[str, Any]) -> int:
    if args.args_file == "-":
        calls = list(_inputs.read_calls(sys.stdin, "stdin"))
    else:
        path = Path(args.args_file)
        try:
            with path.open(encoding="utf-8") as stream:
                calls = list(_inputs.read_calls(stream, str(path)))
        except OSError as exc:
            raise _inputs.UsageError(f"{path}: {exc.strerror}") from None
    if not calls:
        raise _inputs.UsageError(f"{args.args_file} holds no calls")
    client = session.client
    if not args.wait:
        task_ids = client.execute_batch(args.function_id, calls, timeout=args.timeout, **needs)
        if session.json:
            session.document({"task_ids": task_ids})
        else:
            session.out("\n".join(task_ids))
        return OK
    futures = client.submit_batch(args.function_id, calls, timeout=args.timeout, **needs)
    _wait_all(futures, args.wait_timeout, session)
    outcomes = [_output.outcome_of(_ended(future)) for future in futures]
    if session.json:
        session.document({"tasks": [_output.task_json(o.info, o) for o in outcomes]})
    else:
        for outcome in outcomes:
            session.out(f"FAILED: {outcome.failure}" if outcome.failed else repr(outcome.value))
    failed = [o for o in outcomes if o.failed]
    if failed:
        if not session.json:
            session.traceback(failed[0].info)
        session.note(f"{len(failed)} of {len(outcomes)} tasks FAILED")
        return FAILED
    return OK


def status(args: argparse.Namespace, session: Session) -> int:
    value = session.client.status(args.task_id)
    waiting = session.client.waiting(args.task_id) if not value.terminal else None
    if session.json:
        session.document(
            {"task_id": args.task_id, "status": str(value), "waiting": _output.wait_json(waiting)}
        )
    else:
        session.out(str(value) if waiting is None else f"{value}: {_output.wait_text(waiting)}")
    return OK


def logs(args: argparse.Namespace, session: Session) -> int:
    """Prints what a task's function printed, as kept once it ended."""
    found = session.client.output(args.task_id)
    if session.json:
        document = {"task_id": found.task_id, "output": found.output}
        session.document({**document, "truncated": found.truncated})
    else:
        sys.stdout.write(found.output)
        sys.stdout.flush()
    return OK


def result(args: argparse.Namespace, session: Session) -> int:
    if args.wait:
        info = _wait_one(session.client.future(args.task_id), args.wait_timeout, session)
        return _report(session, info)
    info = session.client.task(args.task_id)
    if not info.status.terminal:
        if session.json:
            session.document(_output.task_json(info))
        session.note(f"task {args.task_id} has not ended: it is {info.status} (try --wait)")
        return TIMEOUT
    return _report(session, info)


def watch(args: argparse.Namespace, session: Session) -> int:
    last: TaskInfo | None = None
    for info in session.client.watch(args.task_id):
        last = info
        if info.status.terminal:
            break
        if session.json:
            session.document(_output.task_json(info))
        else:
            session.out(_output.task_line(info))
    assert last is not None  # a watch ends only after a terminal state
    if not session.json:
        session.out(_output.task_line(last))
    return _report(session, last)


def workers(args: argparse.Namespace, session: Session) -> int:
    report = session.client.workers()
    if session.json:
        session.document(_output.workers_json(report))
    else:
        session.out(_output.workers_table(report))
    return OK


def function(args: argparse.Namespace, session: Session) -> int:
    """Shows what the gateway recorded about a function (not its payload)."""
    info = session.client.get_function(args.function_id)
    if session.json:
        session.document(_function_json(info))
    else:
        session.out(_function_text(info))
    return OK


def tasks(args: argparse.Namespace, session: Session) -> int:
    """Lists the caller's tasks, newest first, with the filters given."""
    if args.limit < 0:
        raise UsageError("--limit must be 0 or more")
    listed = session.client.iter_tasks(
        statuses=args.status,
        function_id=args.function,
        worker_id=args.worker,
        page_size=min(args.limit or 1000, 1000),
    )
    found = list(itertools.islice(listed, args.limit or None))
    if session.json:
        session.document({"tasks": [_output.task_json(info) for info in found]})
        return OK
    rows = [("TASK", "STATUS", "FUNCTION", "WORKER", "CREATED")]
    for info in found:
        created = (
            info.created_time.isoformat(sep=" ", timespec="seconds") if info.created_time else ""
        )
        rows.append((info.task_id, str(info.status), info.function_id, info.worker_id, created))
    session.out(_columns(rows))
    return OK


def functions(args: argparse.Namespace, session: Session) -> int:
    """Lists the caller's functions, newest first, with their counts."""
    if args.limit < 0:
        raise UsageError("--limit must be 0 or more")
    listed = session.client.iter_functions(page_size=min(args.limit or 1000, 1000))
    found = list(itertools.islice(listed, args.limit or None))
    if session.json:
        session.document({"functions": [_function_json(info) for info in found]})
        return OK
    rows = [("FUNCTION", "NAME", "SUBMITTED", "COMPLETED", "FAILED", "CREATED")]
    for info in found:
        counts = info.counts
        created = (
            info.created_time.isoformat(sep=" ", timespec="seconds") if info.created_time else ""
        )
        rows.append(
            (
                info.function_id,
                info.name,
                str(counts.submitted),
                str(counts.completed),
                str(counts.failed),
                created,
            )
        )
    session.out(_columns(rows))
    return OK


def delete_function(args: argparse.Namespace, session: Session) -> int:
    """Deletes a function; its tasks' records stay."""
    session.client.delete_function(args.function_id)
    if session.json:
        session.document({"function_id": args.function_id, "deleted": True})
    else:
        session.note(f"deleted function {args.function_id}")
    return OK


def _columns(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _function_json(info: FunctionInfo) -> dict[str, Any]:
    """The same fields as REST's ``GET /functions/{function_id}``."""
    runtime, placement = info.runtime, info.placement
    return {
        "function_id": info.function_id,
        "name": info.name,
        "size_bytes": info.size_bytes,
        "timeout": info.timeout,
        "created_time": info.created_time.isoformat() if info.created_time else None,
        "runtime": {
            "python_version": runtime.python_version,
            "dill_version": runtime.dill_version,
            "pickle_protocol": runtime.pickle_protocol,
            "serializer": runtime.serializer,
            "cloudpickle_version": runtime.cloudpickle_version,
        },
        "by_reference": info.by_reference,
        "module": info.module,
        "qualname": info.qualname,
        "placement": {
            "labels": dict(placement.labels),
            "resources": dict(placement.resources),
            "any_python": placement.any_python,
            "memory_limit_mb": placement.memory_limit_mb,
            "cpu_limit_seconds": placement.cpu_limit_seconds,
        },
        "counts": {
            "submitted": info.counts.submitted,
            "completed": info.counts.completed,
            "failed": info.counts.failed,
        },
    }


def _function_text(info: FunctionInfo) -> str:
    """A few labelled lines for people."""
    if info.by_reference:
        code = (
            f"by reference to {info.module}.{info.qualname}: runs only on workers that can "
            f"import {info.module} (their --code-path / FAAS_CODE_PATH)"
        )
    else:
        code = "by value: workers need not import its module"
    runtime = info.runtime
    versions = [f"Python {runtime.python_version}"] if runtime.python_version else []
    if runtime.serializer == "cloudpickle":
        versions.append(f"cloudpickle {runtime.cloudpickle_version or '(version unknown)'}")
    if runtime.dill_version:
        versions.append(f"dill {runtime.dill_version}")
    needs = [f"{k}={v}" for k, v in sorted(info.placement.labels.items())]
    needs += [f"{k}>={v:g}" for k, v in sorted(info.placement.resources.items())]
    if info.placement.any_python:
        needs.append("any Python")
    if info.placement.memory_limit_mb:
        needs.append(f"at most {info.placement.memory_limit_mb} MiB")
    if info.placement.cpu_limit_seconds:
        needs.append(f"at most {info.placement.cpu_limit_seconds:g} s of CPU")
    rows = [
        ("function", info.function_id),
        ("name", info.name),
        ("code", code),
        ("payload", f"{info.size_bytes} bytes, pickle protocol {runtime.pickle_protocol}"),
        ("runtime", ", ".join(versions) or "not given by the client"),
        ("timeout", f"{info.timeout:g} s" if info.timeout is not None else "none"),
        ("placement", ", ".join(needs) or "any worker"),
        (
            "tasks",
            f"{info.counts.submitted} submitted, {info.counts.completed} completed, "
            f"{info.counts.failed} failed",
        ),
        ("created", info.created_time.isoformat(sep=" ") if info.created_time else "unknown"),
    ]
    return "\n".join(f"{label:<10} {value}" for label, value in rows)


def _report(session: Session, info: TaskInfo) -> int:
    """Prints an ended task's value (or its failure, on stderr) and returns the exit code."""
    outcome = _output.outcome_of(info)
    if session.json:
        session.document(_output.task_json(info, outcome))
    elif not outcome.failed:
        session.out(repr(outcome.value))
    if outcome.failed:
        if not session.json:
            session.traceback(info)
        session.note(outcome.failure)
        return FAILED
    return OK


def _ended(future: TaskFuture) -> TaskInfo:
    """The terminal snapshot of a done future, or the error that ended its wait."""
    info = future.info
    if info is not None and info.status.terminal:
        return info
    error = future.exception()
    raise error if error is not None else FaaSError(f"task {future.task_id} has no result")


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _left(deadline: float | None, tick: float | None) -> float | None:
    if deadline is None:
        return tick
    left = max(0.0, deadline - time.monotonic())
    return left if tick is None else min(left, tick)


def _wait_one(future: TaskFuture, timeout: float | None, session: Session) -> TaskInfo:
    """Waits for one task (a spinner on a terminal); its terminal snapshot."""
    deadline = _deadline(timeout)
    with Progress(session.stderr) as progress:
        tick = 0.1 if progress.enabled else None
        while not future.done():
            progress.spin(f"task {future.task_id} {future.status}")
            concurrent.futures.wait([future], _left(deadline, tick))
            if not future.done() and deadline is not None and time.monotonic() >= deadline:
                future.cancel()
                raise FaaSTimeout(
                    f"task {future.task_id} did not end within {timeout:g}s (it is {future.status})"
                )
    return _ended(future)


def _wait_all(futures: Sequence[TaskFuture], timeout: float | None, session: Session) -> None:
    """Waits for every task (a progress bar on a terminal)."""
    deadline = _deadline(timeout)
    pending: set[concurrent.futures.Future[Any]] = set(futures)
    with Progress(session.stderr) as progress:
        tick = 0.1 if progress.enabled else None
        while pending:
            progress.count(len(futures) - len(pending), len(futures), "tasks")
            _, pending = concurrent.futures.wait(
                pending, _left(deadline, tick), concurrent.futures.ALL_COMPLETED
            )
            if pending and deadline is not None and time.monotonic() >= deadline:
                raise FaaSTimeout(
                    f"{len(pending)} of {len(futures)} tasks did not end within {timeout:g}s"
                )


COMMANDS = {
    "up": up,
    "register": register,
    "execute": execute,
    "status": status,
    "logs": logs,
    "result": result,
    "watch": watch,
    "workers": workers,
    "function": function,
    "tasks": tasks,
    "functions": functions,
    "delete-function": delete_function,
    "tokens": tokens,
    "certs": certs,
    "keys": keys,
}
