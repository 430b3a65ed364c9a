"""huey on Redis: ``huey_consumer -k process -w 2`` and ``-k thread -w 2``.

Results on use ``notify_result=True`` (the waiting client BLPOPs instead of polling
from 50 ms), and ``store_none=True`` since the task returns ``None``.
"""

from __future__ import annotations

from huey import RedisHuey

from peers import BIN, RESULTS, URL, client_main, incr, latencies, timed

DIST = "huey"
ENV: dict[str, str] = {}

huey = RedisHuey("bench", url=URL, results=RESULTS, store_none=True, notify_result=RESULTS)


@huey.task(name="noop")  # type: ignore[untyped-decorator]  # huey is untyped
def noop() -> None:
    incr()


def workers() -> dict[str, tuple[bool, list[str]]]:
    base = [str(BIN / "huey_consumer"), "peers.huey.huey", "-n", "-q"]
    return {
        "process": (False, [*base, "-k", "process", "-w", "2"]),
        "thread": (False, [*base, "-k", "thread", "-w", "2"]),
        "process+results": (True, [*base, "-k", "process", "-w", "2"]),
    }


if __name__ == "__main__":
    # huey names a task after its module: send it from ``peers.huey``, not ``__main__``.
    from peers.huey import noop as named_noop

    client_main(
        {
            "publish": lambda n: timed(named_noop, n),
            "rtt": lambda n: latencies(lambda: named_noop().get(blocking=True, timeout=10), n),
        }
    )
