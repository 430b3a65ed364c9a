"""Notes a contract's tasks leave for its tests: ``EVENT TASK_ID`` lines in a file.

Tasks may run in threads, green threads or child processes of a worker: a line appended
to a file in a folder the test names is something all of them can leave, and the test
can read, without any channel through the worker.
"""

from __future__ import annotations

import os
from pathlib import Path

NOTES_FILE = "events.log"


def note(folder: str, event: str, task_id: str | None) -> None:
    """Append ``event task_id`` to the folder's notes (one short append: atomic)."""
    with open(os.path.join(folder, NOTES_FILE), "a") as log:
        log.write(f"{event} {task_id}\n")


def noted(folder: str | Path, event: str) -> list[str]:
    """The ids noted with ``event`` in ``folder``, oldest first."""
    path = Path(folder) / NOTES_FILE
    if not path.exists():
        return []
    lines = (line.split() for line in path.read_text().splitlines())
    return [parts[1] for parts in lines if len(parts) == 2 and parts[0] == event]
