"""The tasks the pool contract's workers run (``tq -A tq_testing.contracts.pool_tasks``).

The app takes its broker and result backend from the environment (``TQ_BROKER_URL``,
``TQ_RESULT_BACKEND``), which the contract sets. Tasks note what happens to them in a
folder the test names (:mod:`tq_testing.contracts.notes`), so the test can tell what
started and what ran, in any pool: threads, green threads or child processes. Only the
workers import this module: it creates an app.
"""

from __future__ import annotations

import os
import time
from typing import Any

from tq import App
from tq.errors import SoftTimeLimitExceeded
from tq.task import Task
from tq_testing.contracts.notes import note, noted

app = App("tq_pool_contract")

#: Sleep in steps this long where a task must notice its time limit between two calls:
#: a thread sees an exception raised in it only between bytecodes.
STEP = 0.02


@app.task(name="tq_pool_contract.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="tq_pool_contract.fail")
def fail(message: str) -> None:
    raise ValueError(message)


@app.task(name="tq_pool_contract.record", bind=True)
def record(self: Task[Any, Any], folder: str, value: int) -> int:
    """Note that this task ran; return ``value``."""
    note(folder, "ran", self.request.id)
    return value


@app.task(name="tq_pool_contract.meet", bind=True)
def meet(self: Task[Any, Any], folder: str, expected: int, timeout: float) -> int:
    """Arrive, then wait until ``expected`` tasks arrived (or ``timeout``); return how many did."""
    note(folder, "arrived", self.request.id)
    deadline = time.monotonic() + timeout
    while len(arrived := noted(folder, "arrived")) < expected and time.monotonic() < deadline:
        time.sleep(STEP)
    return len(arrived)


@app.task(name="tq_pool_contract.hold", bind=True)
def hold(self: Task[Any, Any], folder: str, release: str) -> str:
    """Note the start, run until the file ``release`` exists in ``folder``, note the end."""
    task_id = self.request.id
    note(folder, "started", task_id)
    while not os.path.exists(os.path.join(folder, release)):
        time.sleep(STEP)
    note(folder, "finished", task_id)
    return release


@app.task(name="tq_pool_contract.catch_soft_limit")
def catch_soft_limit(seconds: float) -> str:
    """Run ``seconds`` in short sleeps; return what stopped it."""
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(STEP)
    except SoftTimeLimitExceeded:
        return "soft time limit caught"
    return "never interrupted"


@app.task(name="tq_pool_contract.overrun")
def overrun(seconds: float) -> str:
    """Run ``seconds`` in short sleeps, ignoring nothing: a hard limit stops it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(STEP)
    return "never interrupted"


@app.task(name="tq_pool_contract.block")
def block(seconds: float) -> str:
    """Sleep ``seconds`` in one call (a green sleep under gevent and eventlet)."""
    time.sleep(seconds)
    return "never interrupted"
