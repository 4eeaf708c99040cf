"""``faas``: the command line of MPCSFaaS, over gRPC to the gateway.

    faas up                                   # the whole platform, until Ctrl-C (make run)
    faas register tasks.py:square             # prints the function id
    faas register tasks.py:train --label gpu=h200 --resource gpu=1   # only on such workers
    faas execute FUNCTION_ID --args '[7]' --wait [--label zone=b]
    faas execute FUNCTION_ID --args-file calls.jsonl --wait   # a batch, with a progress bar
    faas status TASK_ID                       # and why it waits, since when
    faas logs TASK_ID                         # what its function printed
    faas result TASK_ID --wait
    faas watch TASK_ID
    faas workers
    faas function FUNCTION_ID                 # by value or by reference, runtime, placement
    faas keys issue NAME --tenant T           # an API key for clients (printed once)
    faas certs init DIR [--host NAME]         # a development CA and TLS certificates

Every command takes ``--target HOST:PORT`` (default ``$FAAS_TARGET``, else 127.0.0.1:50051),
``--api-key KEY`` (default ``$FAAS_API_KEY``; for a gateway with API keys), ``--tls-ca CA.pem``
(default ``$FAAS_TLS_CA``; for a gateway on TLS, with ``--tls-client-cert``/``--tls-client-key``
when it requires client certificates) and ``--json`` (one
JSON document per line on stdout, for scripts). Errors are one line on stderr
(a FAILED task's traceback comes first); the exit codes are listed in ``faas --help``. On a
terminal, stderr shows what is being waited for: the first connection, then the task.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from .. import errors
from ..client import DEFAULT_TARGET
from . import _exit
from ._certs import add_certs
from ._commands import COMMANDS, Session
from ._output import dumps
from ._progress import ConnectingNotice

__all__ = ["build_parser", "main"]


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def _common(default_target: str, suppress: bool) -> argparse.ArgumentParser:
    """``--target``, ``--json`` and ``--retries``, accepted before or after the subcommand."""
    parser = argparse.ArgumentParser(add_help=False)

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--target",
        default=default(default_target),
        metavar="HOST:PORT",
        help=f"the gateway (env FAAS_TARGET; now {default_target})",
    )
    parser.add_argument(
        "--api-key",
        default=default(None),
        metavar="KEY",
        help="the API key for a gateway with keys (env FAAS_API_KEY, which keeps it out of ps)",
    )
    parser.add_argument(
        "--tls-ca",
        default=default(None),
        metavar="CA.pem",
        help="TLS: the CA that verifies the gateway (env FAAS_TLS_CA; `faas certs init` makes one)",
    )
    parser.add_argument(
        "--tls-client-cert",
        default=default(None),
        metavar="CERT.pem",
        help="TLS: a client certificate for a gateway that requires one (FAAS_TLS_CLIENT_CERT)",
    )
    parser.add_argument(
        "--tls-client-key",
        default=default(None),
        metavar="KEY.pem",
        help="TLS: the key of --tls-client-cert (env FAAS_TLS_CLIENT_KEY)",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print JSON, one per line"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=default(6),
        metavar="N",
        help="retries (with backoff) while the gateway is unavailable (default 6)",
    )
    return parser


def _add_placement(parser: argparse.ArgumentParser, what: str) -> None:
    """``--label`` and ``--resource``, repeatable, as the workers take them."""
    parser.add_argument(
        "--label",
        action="append",
        metavar="KEY=VALUE",
        help=f"{what} run only on workers with this label (repeatable, or k=v,k2=v2)",
    )
    parser.add_argument(
        "--resource",
        action="append",
        metavar="NAME=AMOUNT",
        help=f"{what} run only on workers with at least this much of it (repeatable)",
    )


def _add_wait(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action="store_true", help="wait for the task to end")
    parser.add_argument(
        "--wait-timeout",
        type=_positive,
        metavar="SECONDS",
        help="with --wait, give up after this long (exit code 5)",
    )


def build_parser(default_target: str = DEFAULT_TARGET) -> argparse.ArgumentParser:
    """The ``faas`` argument parser."""
    common = _common(default_target, suppress=True)
    parser = argparse.ArgumentParser(
        prog="faas",
        description="MPCSFaaS command line: talks gRPC to the gateway.",
        epilog=_exit.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common(default_target, suppress=False)],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    up = commands.add_parser(
        "up",
        help="start the whole platform until Ctrl-C (what `make run` runs)",
        description="Starts Redis, dispatcher, gateway, REST shim and workers. Options after "
        "`up` go to the launcher: see `faas up --help`.",
        add_help=False,
    )
    up.add_argument("launcher_args", nargs=argparse.REMAINDER)

    register = commands.add_parser(
        "register", parents=[common], help="register a function from a Python file"
    )
    register.add_argument("spec", metavar="FILE.py:FUNC", help="the file and the function in it")
    register.add_argument("--name", help="a display name (default FUNC)")
    register.add_argument(
        "--timeout", type=_positive, metavar="SECONDS", help="default time limit of its tasks"
    )
    _add_placement(register, "its tasks")
    register.add_argument(
        "--any-python",
        action="store_true",
        help="its tasks may run on workers of another Python (and cloudpickle) version",
    )

    execute = commands.add_parser(
        "execute", parents=[common], help="run a registered function (one task or a batch)"
    )
    execute.add_argument("function_id", metavar="FUNCTION_ID")
    execute.add_argument("--args", metavar="JSON", help="positional arguments, e.g. '[1, 2]'")
    execute.add_argument("--kwargs", metavar="JSON", help="keyword arguments, e.g. '{\"a\": 1}'")
    execute.add_argument(
        "--args-file",
        metavar="FILE.jsonl",
        help='one task per line: [args...] or {"args": [...], "kwargs": {...}}; - for stdin',
    )
    execute.add_argument(
        "--timeout", type=_positive, metavar="SECONDS", help="time limit of each task"
    )
    _add_placement(execute, "the tasks (with the function's own needs)")
    _add_wait(execute)

    status = commands.add_parser(
        "status", parents=[common], help="print a task's status and why it waits"
    )
    status.add_argument("task_id", metavar="TASK_ID")

    logs = commands.add_parser(
        "logs", parents=[common], help="print what a task's function printed (once it ended)"
    )
    logs.add_argument("task_id", metavar="TASK_ID")

    result = commands.add_parser("result", parents=[common], help="print a task's result")
    result.add_argument("task_id", metavar="TASK_ID")
    _add_wait(result)

    watch = commands.add_parser(
        "watch", parents=[common], help="print a task's status changes until it ends"
    )
    watch.add_argument("task_id", metavar="TASK_ID")

    commands.add_parser(
        "workers", parents=[common], help="table of connected workers and their load"
    )

    function = commands.add_parser(
        "function",
        parents=[common],
        help="what the gateway recorded about a function (by value or by reference, ...)",
    )
    function.add_argument("function_id", metavar="FUNCTION_ID")

    _add_listings(commands, common)

    tokens = commands.add_parser(
        "tokens",
        parents=[common],
        help="enroll workers and gateways: issue, list, revoke tokens (dispatcher --tokens-file)",
        description="Changes the tokens file the dispatcher admits workers and gateways by "
        "(it re-reads the file, so a revoked token stops working within a second).",
    )
    tokens.add_argument(
        "--tokens-file",
        default=os.environ.get("FAAS_TOKENS_FILE", ".faas-data/tokens"),
        metavar="PATH",
        help="the tokens file (default $FAAS_TOKENS_FILE, else .faas-data/tokens)",
    )
    actions = tokens.add_subparsers(dest="action", metavar="ACTION", required=True)
    issue = actions.add_parser("issue", help="enroll ID and print its token (once)")
    issue.add_argument("id", metavar="ID", help="the worker id (or a gateway's name)")
    issue.add_argument("--role", choices=("worker", "gateway"), default="worker")
    actions.add_parser("list", help="the enrolled ids, roles and when they were issued")
    revoke = actions.add_parser("revoke", help="remove ID: its token stops working")
    revoke.add_argument("id", metavar="ID")
    _add_keys(commands, common)
    add_certs(commands, common)
    return parser


def _add_listings(
    commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser
) -> None:
    tasks = commands.add_parser(
        "tasks", parents=[common], help="list your tasks, newest first (no results)"
    )
    tasks.add_argument(
        "--status",
        action="append",
        default=[],
        choices=("QUEUED", "RUNNING", "COMPLETED", "FAILED"),
        type=str.upper,
        help="only tasks in this status (repeat for several)",
    )
    tasks.add_argument("--function", default="", metavar="FUNCTION_ID", help="only its tasks")
    tasks.add_argument("--worker", default="", metavar="WORKER_ID", help="only tasks run there")
    tasks.add_argument(
        "--limit", type=int, default=50, metavar="N", help="at most N tasks (default 50; 0: all)"
    )
    functions = commands.add_parser(
        "functions", parents=[common], help="list your functions, newest first, with counts"
    )
    functions.add_argument(
        "--limit", type=int, default=0, metavar="N", help="at most N functions (0: all)"
    )
    delete = commands.add_parser(
        "delete-function",
        parents=[common],
        help="delete a function (refused while it has QUEUED or RUNNING tasks)",
    )
    delete.add_argument("function_id", metavar="FUNCTION_ID")


def _add_keys(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    keys = commands.add_parser(
        "keys",
        parents=[common],
        help="API keys of clients: issue, list, revoke (gateway --api-keys-file)",
        description="Changes the API keys file the gateway authenticates clients by (it "
        "re-reads the file, so a revoked key stops working at once). A key reaches the "
        "functions and tasks of its tenant only.",
    )
    keys.add_argument(
        "--keys-file",
        default=os.environ.get("FAAS_API_KEYS_FILE", ".faas-data/api_keys"),
        metavar="PATH",
        help="the API keys file (default $FAAS_API_KEYS_FILE, else .faas-data/api_keys)",
    )
    actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    issue = actions.add_parser("issue", help="make key NAME for a tenant and print it (once)")
    issue.add_argument("id", metavar="NAME", help="the key's name (issuing it again replaces it)")
    issue.add_argument(
        "--tenant",
        required=True,
        help="whose functions and tasks the key reaches (lower-case letters, digits, _ and -)",
    )
    actions.add_parser("list", help="the keys' names, tenants and when they were issued")
    revoke = actions.add_parser("revoke", help="remove key NAME: it stops working")
    revoke.add_argument("id", metavar="NAME")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one ``faas`` command; returns its exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(os.environ.get("FAAS_TARGET") or DEFAULT_TARGET)
    if arguments[:1] == ["up"]:  # everything after `up` belongs to the launcher
        args = argparse.Namespace(command="up", launcher_args=arguments[1:], json=False)
        args.target, args.retries, args.api_key = DEFAULT_TARGET, 0, None
    else:
        args = parser.parse_args(arguments)
    if getattr(args, "wait_timeout", None) is not None:
        args.wait = True
    session = Session(
        target=args.target, json=args.json, retries=args.retries, api_key=args.api_key
    )
    session.tls = (
        getattr(args, "tls_ca", None),
        getattr(args, "tls_client_cert", None),
        getattr(args, "tls_client_key", None),
    )
    notice = ConnectingNotice(session.stderr).attach() if session.stderr.isatty() else None
    try:
        return COMMANDS[args.command](args, session)
    except KeyboardInterrupt:
        session.note("interrupted")
        return _exit.INTERRUPTED
    except Exception as exc:
        if notice is not None:
            notice.stop()
        return _fail(session, exc)
    finally:
        session.close()
        if notice is not None:
            notice.detach()


def _fail(session: Session, error: BaseException) -> int:
    """Reports ``error`` in one line on stderr (JSON with ``--json``); its exit code."""
    code = _exit.code_for(error)
    message = " ".join(str(error).split()) or type(error).__name__
    if code == _exit.ERROR and not hasattr(error, "reason"):
        message = f"{type(error).__name__}: {message}"
    elif isinstance(error, errors.AuthenticationError):
        message = (
            f"{message} (give --api-key KEY or set FAAS_API_KEY; an admin makes one with "
            "`faas keys issue NAME --tenant T`)"
        )
    elif isinstance(error, errors.QuotaExceeded):
        message = f"{message} (nothing was stored; try again in {error.retry_after:.1f}s)"
    if session.json:
        document = {"error": message, "reason": getattr(error, "reason", ""), "exit_code": code}
        print(dumps(document), file=session.stderr, flush=True)
    else:
        session.note(message)
    return code
