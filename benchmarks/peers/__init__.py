"""One adapter per library, each driven only through that library's public API.

Every adapter module, imported with ``BENCH_URL`` (the private Redis) and
``BENCH_RESULTS`` (``"1"`` to store results) in the environment, defines:

- a task ``noop`` whose body does one ``INCR`` of :data:`harness.DONE_KEY`;
- ``DIST``: the PyPI distribution whose version the report shows;
- ``workers()``: worker variant name -> (results on?, argv of one worker command with
  concurrency 2);
- client commands, run as ``python -m peers.<name> COMMAND N`` in a fresh process, each
  printing JSON: ``publish`` (``{"seconds"}`` to send N tasks one call each, after one
  warm-up call; tasks then wait in the queue), ``rtt`` (``{"latencies"}`` of N
  sequential send-and-wait calls) and, where the library has one, ``bulk``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from importlib.metadata import version
from pathlib import Path

import redis

DONE_KEY = "bench:done"
URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")
RESULTS = os.environ.get("BENCH_RESULTS") == "1"
BIN = Path(sys.executable).parent

#: One client per process, reused by every task body (the work each library runs).
counter = redis.Redis.from_url(URL)


def incr() -> None:
    """The task body: the same single Redis command for every library."""
    counter.incr(DONE_KEY)


def client_main(commands: Mapping[str, Callable[[int], object]]) -> None:
    """``python -m peers.<name> COMMAND N``: print the command's measurement as JSON."""
    command = sys.argv[1]
    if command == "spec":
        print(json.dumps(_spec(sorted(commands))))
        return
    n = int(sys.argv[2])
    if command not in commands:
        raise SystemExit(f"unknown command {command!r}; known: {sorted(commands)}")
    print(json.dumps(commands[command](n)))


def timed(send: Callable[[], object], n: int) -> dict[str, float]:
    """Call ``send`` once to connect, then ``n`` times under the clock."""
    send()
    started = time.perf_counter()
    for _ in range(n):
        send()
    return {"seconds": time.perf_counter() - started}


def latencies(call: Callable[[], object], n: int) -> dict[str, list[float]]:
    """One warm-up, then the latency of ``n`` sequential calls."""
    call()
    out: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return {"latencies": out}


def _spec(commands: list[str]) -> dict[str, object]:
    """What the orchestrator needs to know without importing the library itself."""
    main = sys.modules["__main__"]
    return {
        "dist": main.DIST,
        "version": version(main.DIST),
        "env": main.ENV,
        "workers": main.workers(),
        "drain_tasks": getattr(main, "DRAIN_TASKS", None),
        "commands": commands,
    }
