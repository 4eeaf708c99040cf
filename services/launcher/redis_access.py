"""Who may do what in the embedded Redis: one ACL user per service, with a password of its own.

The default user is off, so a client without a password gets ``NOAUTH`` for every command. The
gateway and the dispatcher each get the commands their side of the store sends (Lua scripts
included: in Redis 6.2 a script's ``redis.call`` is checked against the caller's own rights) on
the keys under their prefix, and nothing else; no ``FLUSHALL``, ``CONFIG``, ``ACL``, ``DEBUG``,
``SHUTDOWN``, ``MODULE`` or ``KEYS``. The launcher's own user (readiness checks, operators) may do
everything. Workers and the REST shim get no user at all: they never talk to Redis.

The passwords are made once and kept in ``credentials.json`` (mode 0600) next to the data, so a
restarted Redis or service, and an operator's ``redis-cli``, use the same ones; delete the file
to make new ones at the next start. The ``aclfile`` Redis reads holds only their SHA-256 hashes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = [
    "ACL_FILE",
    "ADMIN",
    "CREDENTIALS_FILE",
    "DISPATCHER",
    "GATEWAY",
    "USERS",
    "ServiceUser",
    "acl_file_text",
    "load_credentials",
    "save_credentials",
    "write_private",
]

CREDENTIALS_FILE = "credentials.json"
ACL_FILE = "users.acl"


@dataclass(frozen=True, slots=True)
class ServiceUser:
    """An ACL user: the commands it may send and the keys (suffixes of the key prefix) it may
    touch; ``None`` for keys means every key and every command (the launcher's own user)."""

    name: str
    commands: tuple[str, ...] = ()
    keys: tuple[str, ...] | None = None

    def rules(self, prefix: str) -> str:
        if self.keys is None:
            return "~* &* +@all"
        patterns = " ".join(f"~{_glob_escaped(prefix)}{suffix}" for suffix in self.keys)
        commands = " ".join(f"+{command}" for command in self.commands)
        return f"resetkeys resetchannels -@all {commands} {patterns}"


# What redis-py sends on connecting (its name and version, and whether it wants maintenance
# notifications: Redis 6.2 answers that it knows neither, which redis-py ignores), and to run a
# registered script: EVALSHA, and SCRIPT LOAD after NOSCRIPT.
_CLIENT = ("client|setinfo", "client|maint_notifications", "evalsha", "script|load")

# services/common/store/_store.py and scripts.py, the gateway's side: register_function (a
# MULTI with its functions index), get_function(_payload), create_tasks (CREATE_TASKS),
# get_status(_reason), get_task(s), the listings (_listing.RANGE, dropping expired ids) and
# delete_function (DELETE_FUNCTION).
GATEWAY = ServiceUser(
    "faas-gateway",
    commands=(
        "ping",
        "hset",
        "hget",
        "hmget",
        "hstrlen",
        *_CLIENT,
        # inside CREATE_TASKS
        "exists",
        "get",
        "set",
        "zadd",
        "zcard",  # a tenant's open tasks, with --tenant-max-open-tasks
        "hincrby",  # a function's submitted count
        # the listings and DeleteFunction
        "multi",
        "exec",
        "zrevrank",
        "zcount",
        "zrevrange",
        "zrem",
        "hkeys",  # a deleted function's hash is emptied (no DEL)
        "hdel",
        "zremrangebyrank",
        "hgetall",  # the dispatcher's report of itself and its workers' heartbeats
    ),
    keys=(
        "function:*",
        "task:*",
        "request:*",
        "queued",
        "open:*",
        "tasks:*",
        "function-tasks:*",
        "functions:*",
        "dispatcher",
        "heartbeats",
    ),
)

# The dispatcher's side: queued_ids, running_ids, load_queued, running_attempts,
# get_function_payload, and the scripts START_ATTEMPTS, FINISH_ATTEMPTS, REQUEUE_ATTEMPTS,
# FAIL_QUEUED and SET_PENDING.
DISPATCHER = ServiceUser(
    "faas-dispatcher",
    commands=(
        "ping",
        "zrange",
        "hmget",
        "hget",
        *_CLIENT,
        # inside the scripts
        "hset",
        "hdel",
        "hincrby",
        "zadd",
        "zrem",
        "pexpire",
        "exists",  # a function's completed and failed counts, kept while it exists
        # its report of itself and its workers' heartbeats (services/common/store/_presence.py)
        "multi",
        "exec",
        "hkeys",
    ),
    # open: taken out when terminal; dispatcher and heartbeats: its reports
    keys=("function:*", "task:*", "queued", "running", "open:*", "dispatcher", "heartbeats"),
)

ADMIN = ServiceUser("faas-admin")

USERS = (ADMIN, GATEWAY, DISPATCHER)


def _glob_escaped(prefix: str) -> str:
    if re.search(r"\s", prefix):
        raise ValueError(f"a Redis key prefix with white space ({prefix!r}) cannot be in an ACL")
    return re.sub(r"([*?\[\]\\])", r"\\\1", prefix)


def acl_file_text(passwords: Mapping[str, str], prefix: str = "faas:") -> str:
    """The ``aclfile`` for ``passwords`` (user name -> password): the default user off, and each
    of :data:`USERS` with the hash of its password and its rules."""
    lines = ["user default off resetpass resetkeys resetchannels -@all"]  # no comments allowed
    for user in USERS:
        digest = hashlib.sha256(passwords[user.name].encode()).hexdigest()
        lines.append(f"user {user.name} reset on #{digest} {user.rules(prefix)}")
    return "\n".join(lines) + "\n"


def load_credentials(path: Path) -> dict[str, str]:
    """The passwords kept in ``path`` (made for users it lacks), new ones if there is none."""
    passwords: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError):
        stored = json.loads(path.read_text())
        if not isinstance(stored, dict):
            raise ValueError(f"{path} does not hold a JSON object of user names and passwords")
        passwords = {str(name): str(value) for name, value in stored.items() if value}
    for user in USERS:
        if not passwords.get(user.name):
            passwords[user.name] = secrets.token_urlsafe(32)
    return passwords


def save_credentials(path: Path, passwords: Mapping[str, str]) -> None:
    """Writes ``passwords`` to ``path`` with mode 0600 unless it holds them already (and
    narrows a wider mode)."""
    text = json.dumps(dict(passwords), indent=2, sort_keys=True) + "\n"
    with contextlib.suppress(FileNotFoundError):
        if path.read_text() == text:
            if stat.S_IMODE(path.stat().st_mode) != 0o600:
                log.warning("%s was readable by others; narrowed it to mode 0600", path)
                path.chmod(0o600)
            return
    write_private(path, text)


def write_private(path: Path, text: str) -> None:
    """Replaces ``path`` with ``text`` in a file only its owner may read (never wider, not even
    for a moment)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(partial, path)
