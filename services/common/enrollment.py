"""Who may connect: enrolled workers and gateways (to the dispatcher) and clients holding API keys
(to the gateway), each with a bearer token.

A token is ``faas_<id>.<secret>``: ``id`` names the credential (for a worker, the worker id the
dispatcher then uses, whatever its hello claims; for a client's API key, the key's name) and
``secret`` is 32 random bytes. The tokens file keeps one JSON object per line, ``{"id", "role",
"sha256", "created"}`` (a client's key adds ``"tenant"``, whose functions and tasks the key
reaches): the SHA-256 of the
secret, never the secret (a token is random, so a fast hash is enough to make a stolen file
useless for connecting). The file is written with mode 0600, atomically (a new file renamed over
the old one), so a reader sees either version. The dispatcher re-reads it when it changes, so a
revoked credential stops working without a restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "DEFAULT_TENANT",
    "ROLES",
    "Credential",
    "EnrollmentError",
    "Role",
    "TokenFile",
    "bearer_token",
    "parse_token",
]

Role = Literal["worker", "gateway", "client"]
ROLES: tuple[Role, ...] = ("worker", "gateway", "client")
# The tenant of every function and task when the gateway runs open (no API keys file), and of
# records stored before tenants existed.
DEFAULT_TENANT = "default"
_PREFIX = "faas_"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class EnrollmentError(ValueError):
    """A bad credential id, role or tokens file; the message says which."""


@dataclass(frozen=True, slots=True)
class Credential:
    """One enrolled worker, gateway or client API key, as the tokens file holds it."""

    id: str
    role: Role
    sha256: str
    created: float
    tenant: str = ""  # a client key's tenant; "" for workers and gateways


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed token, else None."""
    if not token.startswith(_PREFIX):
        return None
    credential_id, dot, secret = token[len(_PREFIX) :].rpartition(".")
    if not dot or not _ID.match(credential_id) or len(secret) < 32:
        return None
    return credential_id, secret


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` entry of gRPC metadata, if any."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


class TokenFile:
    """The credentials in one tokens file: issue, list, revoke, and verify a presented token."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None  # (mtime_ns, size) when last read
        self._by_id: dict[str, Credential] = {}

    # --- reading ----------------------------------------------------------------------------

    def credentials(self) -> list[Credential]:
        """Every credential in the file now (re-read when it changed), oldest first."""
        self._refresh()
        return sorted(self._by_id.values(), key=lambda c: (c.created, c.id))

    def verify(self, token: str | None, role: Role) -> Credential | None:
        """The credential ``token`` proves, when it is enrolled with ``role``; else None."""
        parsed = parse_token(token or "")
        if parsed is None:
            return None
        credential_id, secret = parsed
        self._refresh()
        credential = self._by_id.get(credential_id)
        if credential is None or credential.role != role:
            return None
        if not hmac.compare_digest(credential.sha256, _digest(secret)):
            return None
        return credential

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._by_id = None, {}
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        self._by_id = {c.id: c for c in self._read()}
        self._stamp = stamp

    def _read(self) -> list[Credential]:
        out: list[Credential] = []
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                role = item["role"]
                if role not in ROLES:
                    raise ValueError(f"unknown role {role!r}")
                tenant = str(item.get("tenant", ""))
                if role == "client" and not _TENANT.match(tenant):
                    raise ValueError(f"bad tenant {tenant!r}")
                out.append(
                    Credential(str(item["id"]), role, str(item["sha256"]), item["created"], tenant)
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise EnrollmentError(f"{self.path}:{number}: not a credential ({exc})") from None
        return out

    # --- changing (the CLI) -----------------------------------------------------------------

    def issue(self, credential_id: str, role: Role, tenant: str = "") -> str:
        """Enrolls ``credential_id`` and returns its token (shown once; only its hash is kept).
        Issuing an id again replaces its token: the old one stops working. A ``client`` key
        needs a ``tenant`` (lower-case letters, digits, _ and -); other roles take none."""
        if not _ID.match(credential_id):
            raise EnrollmentError(
                f"credential id {credential_id!r}: 1 to 128 letters, digits or _.:- "
                "starting with a letter or digit"
            )
        if role not in ROLES:
            raise EnrollmentError(f"role {role!r}: one of {', '.join(ROLES)}")
        if role == "client" and not _TENANT.match(tenant):
            raise EnrollmentError(
                f"tenant {tenant!r}: 1 to 64 lower-case letters, digits, _ or - "
                "starting with a letter or digit"
            )
        if role != "client" and tenant:
            raise EnrollmentError(f"a {role} credential belongs to no tenant")
        secret = secrets.token_urlsafe(32)
        existing = {c.id: c for c in self._read()} if self.path.exists() else {}
        existing[credential_id] = Credential(
            credential_id, role, _digest(secret), time.time(), tenant
        )
        self._write(existing.values())
        return f"{_PREFIX}{credential_id}.{secret}"

    def revoke(self, credential_id: str) -> bool:
        """Removes ``credential_id``; False when it was not enrolled."""
        existing = {c.id: c for c in self._read()} if self.path.exists() else {}
        if existing.pop(credential_id, None) is None:
            return False
        self._write(existing.values())
        return True

    def _write(self, credentials: Iterable[Credential]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-")
        try:
            with os.fdopen(fd, "w") as out:  # mkstemp creates it 0600
                for c in credentials:
                    record: dict[str, object] = {
                        "id": c.id,
                        "role": c.role,
                        "sha256": c.sha256,
                        "created": c.created,
                    }
                    if c.tenant:
                        record["tenant"] = c.tenant
                    out.write(json.dumps(record) + "\n")
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
