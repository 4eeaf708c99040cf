"""The gateway's Prometheus metrics: tasks submitted, functions registered, requests by method and
status code, and the requests that failed because Redis did."""

from __future__ import annotations

import grpc
import redis.exceptions
from prometheus_client import CollectorRegistry, Counter

from services.common.errors import StoreUnavailable
from services.common.metrics import redis_errors

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    """The gateway's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.submitted = Counter(
            "faas_tasks_submitted_total",
            "Tasks stored as QUEUED (a batch of N counts N; a repeated request_id counts once)",
            registry=r,
        )
        self.registered = Counter(
            "faas_functions_registered_total", "Functions registered", registry=r
        )
        self.requests = Counter(
            "faas_gateway_requests_total",
            "gRPC calls the gateway answered, by method and status code",
            ["method", "code"],
            registry=r,
        )
        self.redis_errors = redis_errors(r).labels("gateway")

    def answered(
        self, method: str, code: grpc.StatusCode | None, error: BaseException | None
    ) -> None:
        """A call of ``method`` ended with ``code`` (None: OK), after ``error`` if any (the
        error our status boundary answered is the context of the abort it raised)."""
        self.requests.labels(method, (code or grpc.StatusCode.OK).name).inc()
        cause = error.__context__ if error is not None else None
        if isinstance(error, StoreUnavailable | redis.exceptions.RedisError) or isinstance(
            cause, StoreUnavailable | redis.exceptions.RedisError
        ):
            self.redis_errors.inc()
