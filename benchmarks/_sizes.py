"""How much work each measurement does: the full run (< 15 min on 2 cores) and --quick.

The comparison's workload is issue 11's: a no-op task, 2 worker processes, one client, 5,000
tasks, 3 repetitions (the median is the figure), for the SDK, Ray and Celery alike.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sizes:
    processes: int = 2
    repetitions: int = 3
    sdk_tasks: int = 5000
    sdk_map_tasks: int = 5000
    sdk_round_trips: int = 500
    ray_tasks: int = 5000
    ray_round_trips: int = 500
    grpc_tasks: int = 5000
    grpc_batch_tasks: int = 5000
    batch: int = 500
    grpc_window: int = 256
    grpc_round_trips: int = 500
    rest_clients: int = 16
    rest_tasks: int = 2000
    rest_batch_tasks: int = 2000
    rest_round_trips: int = 300
    makespan_tasks: int = 40
    makespan_sleep: float = 0.1
    pool_tasks: int = 5000
    pool_round_trips: int = 1000
    celery_tasks: int = 5000
    celery_round_trips: int = 500
    scaling_processes: tuple[int, ...] = (1, 2, 4, 8)
    scaling_noop_per_process: int = 250
    scaling_sleep_per_process: int = 8
    scaling_sleep: float = 0.05


FULL = Sizes()

QUICK = Sizes(
    repetitions=1,
    sdk_tasks=1000,
    sdk_map_tasks=1000,
    sdk_round_trips=100,
    ray_tasks=1000,
    ray_round_trips=100,
    grpc_tasks=1000,
    grpc_batch_tasks=1000,
    grpc_round_trips=100,
    rest_tasks=400,
    rest_batch_tasks=400,
    rest_round_trips=100,
    pool_tasks=2000,
    pool_round_trips=200,
    celery_tasks=500,
    celery_round_trips=100,
    scaling_processes=(1, 2, 4),
    scaling_noop_per_process=100,
    scaling_sleep_per_process=4,
)
