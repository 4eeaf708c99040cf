"""The REST shim's data path over real HTTP against a real platform: concurrent executes go to
the gateway coalesced (fewer calls than requests), long polls are answered from its one shared
WatchTasks stream, and a bad request among good ones still gets its own answer."""

from __future__ import annotations

import asyncio
import base64
import re

import dill
import httpx

from services.launcher import Platform
from tests.integration.conftest import PlatformFactory
from tests.support import serialize

_COUNTS = re.compile(
    r"REST shim sent (\d+) executes in (\d+) ExecuteBatch and (\d+) ExecuteFunction calls; "
    r"(\d+) long polls waited on (\d+) WatchTasks streams \((\d+) answered there\), "
    r"(\d+) GetResult calls; (\d+) tasks watched ahead, (\d+) long polls found their end there"
)


def _double(x: int) -> int:
    return x * 2


def _args(*args: object) -> str:
    return serialize((args, {}))


def _register(platform: Platform) -> str:
    reply = httpx.post(
        f"{platform.rest_url}/register_function",
        json={"name": "double", "payload": serialize(_double)},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["function_id"])


async def _result(http: httpx.AsyncClient, task_id: str) -> dict[str, object]:
    for _ in range(60):  # each poll waits up to 5 s: bounded at 5 minutes
        reply = await http.get(f"/result/{task_id}", params={"wait": 5})
        assert reply.status_code == 200, reply.text
        body: dict[str, object] = reply.json()
        if body["status"] in ("COMPLETED", "FAILED"):
            return body
    raise AssertionError(f"task {task_id} did not end")


def _value(body: dict[str, object]) -> object:
    assert body["status"] == "COMPLETED", body
    assert isinstance(body["result"], str)
    return dill.loads(base64.b64decode(body["result"]))


async def _execute(http: httpx.AsyncClient, function_id: str, payload: str) -> httpx.Response:
    return await http.post(
        "/execute_function", json={"function_id": function_id, "payload": payload}
    )


def _shim_counts(platform: Platform) -> tuple[int, ...]:
    """Stops the REST shim and reads the counts it logs at shutdown."""
    platform.rest.stop()
    assert platform.rest.log_path is not None
    found = _COUNTS.findall(platform.rest.log_path.read_text(errors="replace"))
    assert found, "the shim logged no counts at shutdown"
    return tuple(int(n) for n in found[-1])


def test_concurrent_executes_are_coalesced_and_long_polls_share_one_stream(
    make_platform: PlatformFactory,
) -> None:
    platform = make_platform()
    function_id = _register(platform)
    count = 200

    async def main() -> list[object]:
        limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
        async with httpx.AsyncClient(base_url=platform.rest_url, limits=limits, timeout=60) as http:

            async def one(x: int) -> object:
                reply = await _execute(http, function_id, _args(x))
                assert reply.status_code == 200, reply.text
                return _value(await _result(http, str(reply.json()["task_id"])))

            return list(await asyncio.gather(*(one(x) for x in range(count))))

    assert asyncio.run(main()) == [2 * x for x in range(count)]
    counts = _shim_counts(platform)
    executes, batches, functions, waits, streams, answered, gets, ahead, found = counts
    assert executes == count
    assert batches >= 1
    assert batches + functions < count  # coalesced: fewer gateway calls than requests
    assert waits >= count
    assert 1 <= streams < count
    assert ahead == count  # every queued task was watched ahead, in its execute call's request
    assert answered + found >= count - gets  # every long poll not sent to GetResult ended here
    assert gets < waits  # most long polls never held a GetResult call of their own


def test_a_bad_payload_among_good_concurrent_ones_gets_its_own_400(
    make_platform: PlatformFactory,
) -> None:
    platform = make_platform()
    function_id = _register(platform)
    bad = base64.b64encode(b"not a pickle at all").decode()
    good = 100

    async def main() -> tuple[httpx.Response, list[httpx.Response], list[object]]:
        limits = httpx.Limits(max_connections=good + 1, max_keepalive_connections=good + 1)
        async with httpx.AsyncClient(base_url=platform.rest_url, limits=limits, timeout=60) as http:
            alone = await _execute(http, function_id, bad)  # its answer when nothing else runs
            replies = await asyncio.gather(
                *(_execute(http, function_id, _args(x)) for x in range(good // 2)),
                _execute(http, function_id, bad),
                *(_execute(http, function_id, _args(x)) for x in range(good // 2, good)),
            )
            for reply in replies:
                assert reply.status_code in (200, 400), reply.text
            values = [
                _value(await _result(http, str(r.json()["task_id"])))
                for r in replies
                if r.status_code == 200
            ]
            return alone, list(replies), values

    alone, replies, values = asyncio.run(main())
    assert alone.status_code == 400, alone.text
    bad_reply = replies[good // 2]
    assert (bad_reply.status_code, bad_reply.json()) == (400, alone.json())
    others = replies[: good // 2] + replies[good // 2 + 1 :]
    assert [r.status_code for r in others] == [200] * good
    assert values == [2 * x for x in range(good)]
    _, batches, *_ = _shim_counts(platform)
    assert batches >= 1  # the bad one shared a batch, so each of that batch went again alone
