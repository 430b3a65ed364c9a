"""Celery 5 on its Redis transport: solo, prefork and threads pools."""

from __future__ import annotations

from celery import Celery

from peers import BIN, RESULTS, URL, client_main, incr, latencies, timed

DIST = "celery"
ENV: dict[str, str] = {}

app = Celery("bench", broker=URL, backend=URL if RESULTS else None)
app.conf.task_ignore_result = not RESULTS
app.conf.broker_connection_retry_on_startup = True


@app.task(name="noop")  # type: ignore[untyped-decorator]  # celery is untyped
def noop() -> None:
    incr()


def workers() -> dict[str, tuple[bool, list[str]]]:
    base = [str(BIN / "celery"), "-A", "peers.celery:app", "worker", "-l", "warning"]
    base += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
    return {
        "solo": (False, [*base, "-P", "solo"]),
        "prefork": (False, [*base, "-P", "prefork", "-c", "2"]),
        "threads": (False, [*base, "-P", "threads", "-c", "2"]),
        "prefork+results": (True, [*base, "-P", "prefork", "-c", "2"]),
    }


if __name__ == "__main__":
    client_main(
        {
            "publish": lambda n: timed(noop.delay, n),
            "rtt": lambda n: latencies(lambda: noop.delay().get(timeout=10), n),
        }
    )
