"""Resource limits of a pool child: its address space once, at start; CPU time before each job.

Imported by the children, so it stays light (``resource`` and ``signal`` only).

Memory is RLIMIT_AS, set soft and hard (user code cannot raise it) when the child is ready:
what the child maps then (its interpreter, dill, the pool's modules), plus ``HEADROOM_BYTES`` for
the threads and malloc arenas it starts later, plus the job's allowance. An allocation over it
fails, which Python raises as ``MemoryError``; the job fails with ``MEMORY_LIMIT`` and, once its
frames are gone, the child has its memory back for the next job.

CPU time is RLIMIT_CPU: before each job its soft limit becomes the CPU time the child has used
so far plus the job's allowance, so only the job that overspends gets SIGXCPU, whose default
action ends the child (no core: RLIMIT_CORE is 0). The hard limit stays as it was, since an
unprivileged process cannot raise a hard limit again for the next job; so user code that
catches SIGXCPU or raises its soft limit escapes the CPU limit, never the job's timeout.
"""

from __future__ import annotations

import math
import resource
import signal

__all__ = [
    "HEADROOM_BYTES",
    "limit_cpu",
    "limit_memory",
    "lower_memory",
    "mapped_bytes",
    "prepare_cpu_limit",
    "restore_memory",
    "unlimit_cpu",
]

# Address space for the child's own later needs: the doorbell thread's stack and malloc arena
# (64 MiB of reserve on 64-bit glibc), and the replies it builds.
HEADROOM_BYTES = 256 * 1024 * 1024


def mapped_bytes() -> int:
    """The address space this process maps now (Linux's VmSize); 0 where unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def limit_memory(job_bytes: int) -> int:
    """Let a job map ``job_bytes`` more than this process does now; return the limit set."""
    limit = mapped_bytes() + HEADROOM_BYTES + job_bytes
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return limit


def lower_memory(job_bytes: int) -> None:
    """For one job with a limit of its own: a soft limit ``job_bytes`` over what this process
    maps now (never over the hard limit that :func:`limit_memory` set)."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = mapped_bytes() + HEADROOM_BYTES + job_bytes
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def restore_memory() -> None:
    """After a job with a limit of its own: the soft limit back at the hard one."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def prepare_cpu_limit() -> None:
    """Once, at start: SIGXCPU ends the child, without a core dump."""
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def limit_cpu(job_seconds: float) -> None:
    """Before a job: SIGXCPU once it has used ``job_seconds`` of CPU time (whole seconds up)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + job_seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def unlimit_cpu() -> None:
    """Before a job without a CPU limit, after one with: the soft limit back at the hard one."""
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
