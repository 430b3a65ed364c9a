"""tq, from this checkout: ``tq worker`` with the threads, prefork and solo pools, and two
solo processes (``--processes 2``)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

from peers import BIN, RESULTS, URL, client_main, incr, latencies, timed
from tq import App, Queue
from tq.calling import build_call
from tq.message import Message
from tq.protocol import build_message

DIST = "tq-core"
ENV: dict[str, str] = {}
#: ``BENCH_BROKER`` switches the broker (``sqlite://…``, ``memory://``); Redis otherwise.
BROKER = os.environ.get("BENCH_BROKER", URL)

app = App(
    "bench",
    broker=BROKER,
    backend=URL if RESULTS else None,
    celery_compat=False,
)


@app.task(name="noop", ignore_result=not RESULTS)
def noop() -> None:
    incr()


def workers() -> dict[str, tuple[bool, list[str]]]:
    base = [str(BIN / "tq"), "-A", "peers.tq:app", "worker", "-l", "warning"]
    return {
        "threads": (False, [*base, "-P", "threads", "-c", "2"]),
        "prefork": (False, [*base, "-P", "prefork", "-c", "2"]),
        "solo": (False, [*base, "-P", "solo"]),
        "processes": (False, [*base, "--processes", "2", "-P", "solo"]),
        # The first configuration with results also serves the round trips.
        "processes+results": (True, [*base, "--processes", "2", "-P", "solo"]),
        "threads+results": (True, [*base, "-P", "threads", "-c", "2"]),
    }


def _messages(n: int, countdown: float | None) -> list[tuple[Message, Queue, float | None]]:
    """Messages exactly as ``send_task`` builds them (there is no app-level bulk API)."""
    queue = app.default_queue
    options: dict[str, object] = {"priority": app.conf["task_default_priority"]}
    if countdown is not None:
        options["eta"] = datetime.now(UTC) + timedelta(seconds=countdown)
    items: list[tuple[Message, Queue, float | None]] = []
    for _ in range(n):
        call = build_call("noop", (), {}, options, noop)
        message = build_message(call, app.codecs, app.conf["task_serializer"])
        message.properties["delivery_info"] = {
            "exchange": queue.exchange,
            "routing_key": queue.routing_key,
        }
        items.append((message, queue, call.eta.timestamp() if call.eta else None))
    return items


def publish_bulk(n: int, countdown: float | None = None) -> dict[str, float]:
    """Build with the app's protocol and send through ``Transport.publish_many``.

    Timed: building and sending, in batches of 1,000 (one pipeline each).
    """
    transport = app.transport
    noop.delay()  # connect
    started = time.perf_counter()
    for offset in range(0, n, 1000):
        transport.publish_many(_messages(min(1000, n - offset), countdown))
    return {"seconds": time.perf_counter() - started}


def memory_inprocess(n: int) -> dict[str, float]:
    """The core's own overhead: publish to ``memory://`` and drain with an in-process
    worker (threads pool, concurrency 2), completion counted in Redis as everywhere."""
    from tq_worker import Worker

    started = time.perf_counter()
    for _ in range(n):
        noop.delay()
    published = time.perf_counter()
    worker = Worker(app, pool="threads", concurrency=2)
    worker.start()
    begin = time.perf_counter()
    while int(incr_count()) < n:
        time.sleep(0.002)
    drained = time.perf_counter()
    worker.stop()
    return {"publish_seconds": published - started, "drain_seconds": drained - begin}


def incr_count() -> int:
    from peers import DONE_KEY, counter

    return int(counter.get(DONE_KEY) or 0)


if __name__ == "__main__":
    client_main(
        {
            "publish": lambda n: timed(noop.delay, n),
            "rtt": lambda n: latencies(lambda: noop.delay().get(timeout=10), n),
            "bulk": publish_bulk,
            "eta": lambda n: publish_bulk(n, countdown=3600),
            "memory": memory_inprocess,
        }
    )
