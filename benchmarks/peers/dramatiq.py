"""dramatiq on its Redis broker: 2 processes × 1 thread, or 1 process × 2 threads.

Both with ``dramatiq_queue_prefetch=64``: at the default prefetch (2 × threads) the
consumer sleeps on a full buffer and drains ~500 tasks/s whatever the split (see the
peer baseline); the tuned setting is the harder bar.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

from peers import BIN, RESULTS, URL, client_main, incr, latencies, timed

DIST = "dramatiq"
ENV = {"dramatiq_queue_prefetch": "64"}

broker = RedisBroker(url=URL)  # type: ignore[no-untyped-call]
if RESULTS:
    backend = RedisBackend(url=URL)  # type: ignore[no-untyped-call]
    broker.add_middleware(Results(backend=backend))  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)


_OPTIONS: dict[str, Any] = {"store_results": True} if RESULTS else {}


@dramatiq.actor(actor_name="noop", **_OPTIONS)
def noop() -> None:
    incr()


def workers() -> dict[str, tuple[bool, list[str]]]:
    base = [str(BIN / "dramatiq"), "peers.dramatiq"]
    return {
        "processes": (False, [*base, "-p", "2", "-t", "1"]),
        "threads": (False, [*base, "-p", "1", "-t", "2"]),
        "processes+results": (True, [*base, "-p", "2", "-t", "1"]),
    }


if __name__ == "__main__":
    client_main(
        {
            "publish": lambda n: timed(noop.send, n),
            "rtt": lambda n: latencies(
                lambda: noop.send().get_result(block=True, timeout=10_000), n
            ),
        }
    )
