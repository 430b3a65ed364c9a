"""A picture of the cluster built from events: workers (alive by heartbeat) and tasks.

Events can arrive out of order (two workers, a slow subscriber): a task's state only
moves forward, so a late ``task-started`` never undoes ``task-succeeded``; a retried
task starts over when it is received again.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final, final

from tq import states

HEARTBEAT_EXPIRE_FACTOR: Final = 2.0
DEFAULT_FREQ: Final = 2.0

_TASK_STATES: Final = {
    "task-sent": states.PENDING,
    "task-received": states.RECEIVED,
    "task-started": states.STARTED,
    "task-succeeded": states.SUCCESS,
    "task-failed": states.FAILURE,
    "task-retried": states.RETRY,
    "task-revoked": states.REVOKED,
    "task-rejected": states.REJECTED,
}
# How far along a task is; a state never moves back to a lower rank.
_RANK: Final = {
    states.PENDING: 0,
    states.RECEIVED: 1,
    states.STARTED: 2,
    states.RETRY: 3,
    states.SUCCESS: 4,
    states.FAILURE: 4,
    states.REVOKED: 4,
    states.REJECTED: 4,
}
_TASK_FIELDS: Final = (
    "name",
    "args",
    "kwargs",
    "result",
    "exception",
    "traceback",
    "runtime",
    "retries",
    "eta",
    "expires",
    "root_id",
    "parent_id",
)


@dataclass(slots=True)
class WorkerState:
    """A worker as its events describe it."""

    hostname: str
    pid: int | None = None
    freq: float = DEFAULT_FREQ
    last_heartbeat: float | None = None
    active: int = 0
    processed: int = 0
    loadavg: list[float] = field(default_factory=list)
    sw_ident: str = ""
    sw_ver: str = ""
    sw_sys: str = ""
    offline: bool = False

    @property
    def alive(self) -> bool:
        """Heard from within two heartbeat periods, and not gone offline."""
        if self.offline or self.last_heartbeat is None:
            return False
        return time.time() < self.last_heartbeat + self.freq * HEARTBEAT_EXPIRE_FACTOR

    def update(self, event: dict[str, Any]) -> None:
        self.offline = event["type"] == "worker-offline"
        self.last_heartbeat = float(event.get("local_received") or time.time())
        self.pid = event.get("pid", self.pid)
        self.freq = float(event.get("freq") or self.freq)
        self.active = int(event.get("active") or 0)
        self.processed = int(event.get("processed") or self.processed)
        self.loadavg = list(event.get("loadavg") or self.loadavg)
        self.sw_ident = str(event.get("sw_ident") or self.sw_ident)
        self.sw_ver = str(event.get("sw_ver") or self.sw_ver)
        self.sw_sys = str(event.get("sw_sys") or self.sw_sys)


@dataclass(slots=True)
class TaskState:
    """A task as its events describe it; times are event timestamps (Unix seconds)."""

    uuid: str
    state: str = states.PENDING
    name: str | None = None
    worker: str | None = None
    args: str | None = None
    kwargs: str | None = None
    result: str | None = None
    exception: str | None = None
    traceback: str | None = None
    runtime: float | None = None
    retries: int = 0
    eta: str | None = None
    expires: str | None = None
    root_id: str | None = None
    parent_id: str | None = None
    timestamp: float | None = None
    times: dict[str, float] = field(default_factory=dict)

    def update(self, event: dict[str, Any]) -> None:
        new_state = _TASK_STATES[event["type"]]
        restarted = self.state == states.RETRY and new_state in (states.RECEIVED, states.STARTED)
        if restarted or _RANK[new_state] >= _RANK[self.state]:
            self.state = new_state
        for name in _TASK_FIELDS:
            value = event.get(name)
            if value is not None:
                setattr(self, name, value)
        if event["type"] != "task-sent":
            self.worker = event.get("hostname", self.worker)
        self.timestamp = float(event.get("timestamp") or time.time())
        self.times[new_state] = self.timestamp


@final
class State:
    """Workers and the ``max_tasks`` most recent tasks, fed one event at a time.

    Use it as a receiver's catch-all handler: ``app.events.receiver({"*": state.event})``.
    Safe to read from another thread while events arrive.
    """

    def __init__(self, max_tasks: int = 10000) -> None:
        self.max_tasks = max_tasks
        self.workers: dict[str, WorkerState] = {}
        self.tasks: collections.OrderedDict[str, TaskState] = collections.OrderedDict()
        self.event_count = 0
        self.task_count = 0
        self.lock = threading.RLock()

    def event(self, event: dict[str, Any]) -> None:
        """Apply one event (a dict as received)."""
        kind = str(event.get("type", ""))
        with self.lock:
            self.event_count += 1
            if kind.startswith("worker-"):
                self.worker(str(event["hostname"])).update(event)
            elif kind in _TASK_STATES and event.get("uuid"):
                self._task_event(event)

    def _task_event(self, event: dict[str, Any]) -> None:
        self.task_count += 1
        task = self.task(str(event["uuid"]))
        task.update(event)
        hostname = event.get("hostname")
        if event["type"] != "task-sent" and hostname:
            self.worker(str(hostname))

    def worker(self, hostname: str) -> WorkerState:
        """The worker named ``hostname``, created on first mention."""
        found = self.workers.get(hostname)
        if found is None:
            found = self.workers[hostname] = WorkerState(hostname)
        return found

    def task(self, uuid: str) -> TaskState:
        """The task ``uuid``, created on first mention; the oldest beyond ``max_tasks`` go."""
        found = self.tasks.get(uuid)
        if found is None:
            found = self.tasks[uuid] = TaskState(uuid)
            while len(self.tasks) > self.max_tasks:
                self.tasks.popitem(last=False)
        return found

    def alive_workers(self) -> list[WorkerState]:
        with self.lock:
            return [worker for worker in self.workers.values() if worker.alive]

    def counts(self) -> collections.Counter[str]:
        """How many known tasks are in each state."""
        with self.lock:
            return collections.Counter(task.state for task in self.tasks.values())

    def tasks_by_time(self, limit: int | None = None) -> list[TaskState]:
        """Known tasks, most recently updated first."""
        with self.lock:
            ordered = sorted(self.tasks.values(), key=lambda t: t.timestamp or 0, reverse=True)
        return ordered[:limit] if limit is not None else ordered
