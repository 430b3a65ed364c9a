"""rq 3 with ``SimpleWorker`` (no fork per job; the fork worker drains ~35 jobs/s).

rq has no in-process concurrency: one worker process is its unit, so this is
concurrency 1. Results off is ``result_ttl=0``.
"""

from __future__ import annotations

import redis
from rq import Queue

from peers import BIN, RESULTS, URL, client_main, incr, latencies, timed

DIST = "rq"
ENV: dict[str, str] = {}
#: rq is ~20× slower than the others; a smaller queue keeps the run short (rates only).
DRAIN_TASKS = 3000

queue = Queue("bench", connection=redis.Redis.from_url(URL))


def noop() -> None:
    incr()


def _send() -> object:
    return queue.enqueue("peers.rq.noop", result_ttl=500 if RESULTS else 0)


def _roundtrip() -> object:
    job = queue.enqueue("peers.rq.noop", result_ttl=500)
    result = job.latest_result(timeout=10)
    if result is None:
        raise RuntimeError("no result within 10 s")
    return result


def workers() -> dict[str, tuple[bool, list[str]]]:
    argv = [str(BIN / "rq"), "worker", "-w", "rq.worker.SimpleWorker", "-q", "--url", URL]
    return {"simple": (False, [*argv, "bench"])}


if __name__ == "__main__":
    client_main(
        {
            "publish": lambda n: timed(_send, n),
            "rtt": lambda n: latencies(_roundtrip, n),
        }
    )
