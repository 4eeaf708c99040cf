"""The CLI's exit codes, which scripts can rely on, and the errors each one stands for."""

from __future__ import annotations

from .. import errors
from ._inputs import UsageError

__all__ = ["EPILOG", "code_for"]

OK = 0
FAILED = 1  # the task FAILED
USAGE = 2  # bad arguments or inputs
NOT_FOUND = 3  # unknown function or task id
UNAVAILABLE = 4  # the gateway (or its store or dispatcher) cannot be reached
TIMEOUT = 5  # the task had not ended when the wait ran out (or a call timed out)
REJECTED = 6  # the gateway rejected the request: invalid argument, payload too large
ERROR = 7  # anything else
UNAUTHENTICATED = 8  # no API key, or one the gateway does not know
OVER_QUOTA = 9  # the tenant is over a quota or rate limit: try again later
INTERRUPTED = 130  # Ctrl-C

EPILOG = """\
exit codes:
  0    success
  1    the task FAILED (its error is printed on stderr)
  2    usage error: bad arguments, FILE.py or JSON
  3    not found: unknown function or task id
  4    unavailable: the gateway, its store or the dispatcher could not be reached
  5    timeout: the task had not ended when the wait ran out (or a call timed out)
  6    rejected: invalid argument or payload too large
  7    any other error
  8    unauthenticated: no API key (--api-key, FAAS_API_KEY), or one the gateway does not know
  9    over quota: the tenant has too many open tasks or submits too fast; nothing was stored
  130  interrupted (Ctrl-C)

environment:
  FAAS_TARGET   the gateway's host:port (default 127.0.0.1:50051)
  FAAS_API_KEY  the API key, for a gateway with keys (as --api-key)
"""

_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (UsageError, USAGE),
    (errors.NotFound, NOT_FOUND),
    (errors.ServiceUnavailable, UNAVAILABLE),
    (errors.FaaSTimeout, TIMEOUT),
    (errors.InvalidArgument, REJECTED),
    (errors.PayloadTooLarge, REJECTED),
    (errors.AuthenticationError, UNAUTHENTICATED),
    (errors.QuotaExceeded, OVER_QUOTA),
    (errors.TaskFailed, FAILED),
)


def code_for(error: BaseException) -> int:
    """The exit code of a command that raised ``error``."""
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return ERROR
