"""The tasks of tq's First Steps.

No broker is configured: an app without ``broker_url`` uses the embedded SQLite file
``tq.sqlite3`` in the working directory for messages, and the same file for results.
Start a worker in the directory that holds this file::

    tq -A tasks worker -l info

and call the tasks from another shell in the same directory::

    >>> from tasks import add
    >>> add.delay(4, 4).get(timeout=10)
    8
"""

from __future__ import annotations

from tq import App

app = App("tasks")


@app.task
def add(x: int, y: int) -> int:
    """Return ``x + y``."""
    return x + y


@app.task
def mul(x: int, y: int) -> int:
    """Return ``x * y``."""
    return x * y


@app.task
def divide(x: float, y: float) -> float:
    """Return ``x / y``; ``divide.delay(1, 0)`` shows a task that fails."""
    return x / y
