"""What a worker remembers between tasks: the ids it must never run.

Revoked ids are kept in memory (the newest ``maxlen``, each for ``expires`` seconds, as
Celery does) and, with ``--statedb``/``worker_state_db``, in a JSON file rewritten on
every change, so a restarted worker still refuses what was revoked before.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, final

from tq_worker.bootsteps import Bootstep

if TYPE_CHECKING:
    from tq_worker.worker import Worker

logger = logging.getLogger("tq.worker.state")

REVOKES_MAX: Final = 50000
REVOKE_EXPIRES: Final = 10800.0


@final
class Revoked:
    """A bounded, expiring, thread-safe set of task ids; optionally saved to ``path``."""

    def __init__(self, maxlen: int = REVOKES_MAX, expires: float = REVOKE_EXPIRES) -> None:
        self.maxlen = maxlen
        self.expires = expires
        self.path: str | None = None
        self._ids: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, task_id: object) -> bool:
        # Read without the lock: the worker checks every task, and a dict lookup is atomic.
        return task_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, ids: Iterable[str], when: float | None = None) -> None:
        """Remember ``ids`` (revoked at ``when``, now by default) and save if persistent."""
        now = time.time()
        with self._lock:
            for task_id in ids:
                self._ids.pop(task_id, None)
                self._ids[task_id] = when or now
            self._purge(now)
            snapshot = dict(self._ids)
        if self.path is not None:
            save(self.path, snapshot)

    def items(self) -> dict[str, float]:
        """Id to revocation time, oldest first."""
        with self._lock:
            self._purge(time.time())
            return dict(self._ids)

    def _purge(self, now: float) -> None:
        while self._ids and (
            len(self._ids) > self.maxlen or next(iter(self._ids.values())) < now - self.expires
        ):
            self._ids.popitem(last=False)


def save(path: str, revoked: dict[str, float]) -> None:
    """Write the state file atomically (a crash leaves the old or the new file)."""
    temporary = f"{path}.tmp"
    with open(temporary, "w") as file:
        json.dump({"revoked": revoked}, file)
    os.replace(temporary, path)


def load(path: str) -> dict[str, float]:
    """Revoked ids from a state file; an absent or unreadable file is an empty state."""
    try:
        with open(path) as file:
            data = json.load(file)
        return {str(k): float(v) for k, v in dict(data.get("revoked", {})).items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        logger.warning("Ignoring unreadable worker state file %s: %s", path, exc)
        return {}


class StateDBStep(Bootstep):
    """Loads the revoked ids from ``worker_state_db`` at start; the set saves itself."""

    name = "statedb"

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker)
        self.path: str | None = worker.app.conf["worker_state_db"]

    def start(self) -> None:
        if not self.path:
            return
        revoked = self.worker.consumer.revoked
        for task_id, when in load(self.path).items():
            revoked.add([task_id], when)
        revoked.path = self.path
        logger.info("Loaded %d revoked task ids from %s", len(revoked), self.path)
