"""The MPCSFaaS benchmark suite (GitHub issue #6): ``python -m benchmarks [--quick]``.

Starts the platform (embedded Redis, dispatcher, gateway, REST shim, workers) as real processes in
each dispatcher mode and measures throughput, latency percentiles, makespan, memory and CPU per
task through gRPC and REST, plus a weak-scaling study, against floors measured in the same run:
``multiprocessing.Pool``, a bare grpc.aio server, a bare FastAPI app under uvicorn and (when
installed) Celery with Redis. ``python -m benchmarks.profiling`` attaches py-spy (or runs
pyinstrument) to the services under one load. docs/performance.md explains the figures.

Modules, one concern each:
    __main__            the command line and the order of the sections
    _platform           the platform per mode, free ports, a temporary data directory
    _grpc_load          gRPC throughput, round trips (with their phases) and makespan
    _rest_load          REST clients, batch submits and round trips (httpx)
    _modes              the target figures of one mode
    _scaling            the weak-scaling study
    _memory, _cpu       /proc: RSS/HWM/PSS and CPU time of each service and its children
    _redis_stats        Redis commands per task (INFO commandstats)
    _pool_floor         multiprocessing.Pool on the same tasks
    _grpc_floor(_load)  the bare grpc.aio GatewayService and its load
    _fastapi_floor, _rest_floor   the bare FastAPI app and its load
    _celery_app, _celery_floor    the Celery comparison, with its own worker and redis-server
    _targets, _report, _plots     the issue's targets, the Markdown/JSON report, PNG plots
    profiling, _stacks, _counting py-spy/pyinstrument runs, stack summaries, batch-size counts
"""
