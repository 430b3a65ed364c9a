"""taskiq with taskiq-redis's stream broker: ``taskiq worker --workers 2``.

Result waiting polls; ``check_interval=0.001`` (the default is 0.2 s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from taskiq import AsyncBroker
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from peers import BIN, RESULTS, URL, client_main, incr

DIST = "taskiq"
ENV: dict[str, str] = {}

# consumer_id "0": the group must see tasks queued before the worker starts.
broker: AsyncBroker = RedisStreamBroker(url=URL, consumer_id="0")
if RESULTS:
    broker = broker.with_result_backend(RedisAsyncResultBackend(redis_url=URL))


@broker.task(task_name="noop")
async def noop() -> None:
    incr()


async def _publish(n: int) -> dict[str, float]:
    await broker.startup()
    await noop.kiq()
    started = time.perf_counter()
    for _ in range(n):
        await noop.kiq()
    elapsed = time.perf_counter() - started
    await broker.shutdown()
    return {"seconds": elapsed}


async def _roundtrip(n: int) -> dict[str, list[float]]:
    await broker.startup()
    out: list[float] = []
    for _ in range(n + 1):
        started = time.perf_counter()
        task = await noop.kiq()
        result = await task.wait_result(check_interval=0.001, timeout=10)
        if result.is_err:
            raise RuntimeError(result.error)
        out.append(time.perf_counter() - started)
    await broker.shutdown()
    return {"latencies": out[1:]}


def _run(coro: Coroutine[Any, Any, object]) -> object:
    return asyncio.run(coro)


def workers() -> dict[str, tuple[bool, list[str]]]:
    argv = [str(BIN / "taskiq"), "worker", "peers.taskiq:broker", "--workers", "2"]
    return {
        "2 workers": (False, argv),
        "2 workers+results": (True, argv),
    }


if __name__ == "__main__":
    client_main(
        {
            "publish": lambda n: _run(_publish(n)),
            "rtt": lambda n: _run(_roundtrip(n)),
        }
    )
