"""Who is calling the gateway: the tenant of the API key a call presents.

With no API keys file the gateway runs open: every call is the default tenant's. With one, every
call of ``faas.v1.GatewayService`` must present a client key of that file as gRPC metadata
``authorization: Bearer <key>`` (health and reflection stay open). The file is re-read when it
changes, so a key issued or revoked with ``faas keys`` takes effect without a restart; to keep a
call cheap, the file is looked at (a ``stat``) at most every ``recheck_seconds``, and a key
already verified under the file as it is now is not hashed again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from services.common.enrollment import DEFAULT_TENANT, EnrollmentError, TokenFile, bearer_token
from services.common.errors import Unauthenticated, Unavailable

__all__ = ["RECHECK_SECONDS", "Authenticator"]

log = logging.getLogger(__name__)

RECHECK_SECONDS = 0.5
"""How long a revoked key may still be taken: the file is looked at no more often."""

_MAX_REMEMBERED = 10_000  # verified keys kept at hand (past it: verified again each call)

Metadata = Iterable[tuple[str, str | bytes]] | None


class Authenticator:
    """The tenant of each call, from its bearer key (or the default tenant when running open).

    ``tenant`` raises :class:`Unauthenticated` (reason ``API_KEY_MISSING`` or
    ``API_KEY_INVALID``) for a call without a valid key, and :class:`Unavailable`
    (``API_KEYS_UNREADABLE``) when the keys file cannot be read.
    """

    def __init__(
        self,
        keys_file: Path | None,
        *,
        recheck_seconds: float = RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tokens = TokenFile(keys_file) if keys_file is not None else None
        self._recheck = recheck_seconds
        self._clock = clock
        self._looked = -float("inf")  # when the file was last looked at
        self._stamp: tuple[int, int, int] | None = None  # (inode, mtime_ns, size) then
        self._verified: dict[bytes, str] = {}  # SHA-256 of a key -> its tenant, while unchanged

    @property
    def open(self) -> bool:
        """Whether every call is let in (no API keys file)."""
        return self._tokens is None

    def announce(self) -> None:
        """Logs at start how callers are told apart (a warning when the gateway runs open)."""
        if self._tokens is None:
            log.warning(
                "the gateway runs open: no --api-keys-file, so no call is authenticated and "
                "every call is tenant %r",
                DEFAULT_TENANT,
            )
            return
        try:
            keys = [c for c in self._tokens.credentials() if c.role == "client"]
        except (OSError, EnrollmentError) as exc:
            raise SystemExit(f"the API keys file cannot be read: {exc}") from None
        log.info("API keys from %s (%d client keys)", self._tokens.path, len(keys))

    def tenant(self, metadata: Metadata) -> str:
        """The tenant the call's key belongs to."""
        if self._tokens is None:
            return DEFAULT_TENANT
        token = bearer_token(metadata)
        if token is None:
            raise Unauthenticated(
                "missing API key: send `authorization: Bearer <key>`", "API_KEY_MISSING"
            )
        self._look()
        digest = hashlib.sha256(token.encode()).digest()
        tenant = self._verified.get(digest)
        if tenant is not None:
            return tenant
        try:
            credential = self._tokens.verify(token, "client")
        except (OSError, EnrollmentError) as exc:
            log.error("the API keys file cannot be read: %s", exc)
            raise Unavailable("the API keys cannot be read", "API_KEYS_UNREADABLE") from None
        if credential is None:
            raise Unauthenticated("unknown or revoked API key", "API_KEY_INVALID")
        if len(self._verified) < _MAX_REMEMBERED:
            self._verified[digest] = credential.tenant
        return credential.tenant

    def _look(self) -> None:
        """Forgets the verified keys when the file changed (looked at once per recheck)."""
        now = self._clock()
        if now - self._looked < self._recheck:
            return
        self._looked = now
        assert self._tokens is not None
        path = self._tokens.path
        try:
            stat = path.stat()
            stamp: tuple[int, int, int] | None = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._stamp = stamp
            self._verified.clear()
            self._tokens = TokenFile(path)  # read afresh, whatever its own stamp says
