"""The live terminal monitor behind ``tq events``: plain ANSI redraws, no curses.

Screen: workers (alive by heartbeat, active and processed counts), task rates per state
over the last minute, the most recent tasks with state and runtime, and the latest
failure's traceback. Keys: ``j``/``k`` move the selection, ``r`` revokes the selected
task, ``i`` asks the workers about it (``query_task``) and shows its details, ``q``
quits. Events are received in a thread; the screen is redrawn once a second.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final, TextIO

from tq.events import State, TaskState

if TYPE_CHECKING:
    from tq.app import App

_CLEAR: Final = "\x1b[H\x1b[2J"
_BOLD, _RED, _GREEN, _REVERSE, _RESET = "\x1b[1m", "\x1b[31m", "\x1b[32m", "\x1b[7m", "\x1b[0m"
_RATE_WINDOW: Final = 60.0


@contextlib.contextmanager
def raw_terminal(stream: TextIO) -> Iterator[None]:
    """Single keypresses without echo, restored on exit (no-op when not a terminal)."""
    if not stream.isatty():
        yield
        return
    import termios
    import tty

    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class Monitor:
    """Receives events into a :class:`State` and draws it until ``q`` or ``timeout``."""

    def __init__(self, app: App, timeout: float | None = None, out: TextIO | None = None) -> None:
        self.app = app
        self.state = State()
        self.timeout = timeout
        self.out = out or sys.stdout
        self.selected = 0
        self.message = "keys: j/k select  r revoke  i inspect  q quit"
        self.details: list[str] = []
        self._finished: deque[tuple[float, str]] = deque()
        self.receiver = app.events.receiver({"*": self._on_event})

    def _on_event(self, event: dict[str, Any]) -> None:
        self.state.event(event)
        if event["type"] in ("task-succeeded", "task-failed", "task-retried"):
            self._finished.append((time.time(), event["type"]))

    def run(self) -> None:
        thread = threading.Thread(target=self.receiver.capture, daemon=True)
        thread.start()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        try:
            with raw_terminal(sys.stdin):
                while deadline is None or time.monotonic() < deadline:
                    self.draw()
                    key = _read_key(1.0)
                    if key == "q":
                        break
                    if key:
                        self.press(key)
        except KeyboardInterrupt:
            pass
        finally:
            self.receiver.stop()
            self.out.write(_RESET + "\n")
            self.out.flush()

    # -- keys ---------------------------------------------------------------------

    def press(self, key: str) -> None:
        tasks = self.state.tasks_by_time(self._task_rows())
        if key in ("j", "\x1b[B"):
            self.selected = min(self.selected + 1, max(0, len(tasks) - 1))
        elif key in ("k", "\x1b[A"):
            self.selected = max(0, self.selected - 1)
        elif key in ("r", "i") and tasks:
            task = tasks[min(self.selected, len(tasks) - 1)]
            self.revoke(task) if key == "r" else self.inspect(task)

    def revoke(self, task: TaskState) -> None:
        self.app.control.revoke(task.uuid)
        self.message = f"revoked {task.uuid}"

    def inspect(self, task: TaskState) -> None:
        answers = self.app.control.inspect(timeout=1.0).query_task(task.uuid) or {}
        held = [f"{node}: {found[task.uuid][0]}" for node, found in answers.items() if found]
        self.details = [
            f"{task.uuid} {task.name} {task.state} on {task.worker}",
            f"args={task.args} kwargs={task.kwargs} result={task.result}",
            f"held by workers: {', '.join(held) or 'none'}",
            *(task.traceback or "").splitlines()[-6:],
        ]
        self.message = f"inspected {task.uuid}"

    # -- drawing ------------------------------------------------------------------

    def _task_rows(self) -> int:
        return max(3, shutil.get_terminal_size((100, 40)).lines - 24)

    def draw(self) -> None:
        width = shutil.get_terminal_size((100, 40)).columns
        lines = [f"{_BOLD}tq events{_RESET}  {time.strftime('%H:%M:%S')}  {self.message}"]
        lines += self._workers() + self._rates() + self._tasks() + self._failure()
        lines += self.details
        self.out.write(_CLEAR + "\n".join(line[: width + 12] for line in lines) + "\n")
        self.out.flush()

    def _workers(self) -> list[str]:
        lines = [f"{_BOLD}Workers{_RESET}"]
        for worker in sorted(self.state.workers.values(), key=lambda w: w.hostname):
            status = f"{_GREEN}online{_RESET}" if worker.alive else f"{_RED}offline{_RESET}"
            lines.append(
                f"  {worker.hostname:<40} {status}  active={worker.active}"
                f"  processed={worker.processed}  load={worker.loadavg}"
            )
        return lines

    def _rates(self) -> list[str]:
        cutoff = time.time() - _RATE_WINDOW
        while self._finished and self._finished[0][0] < cutoff:
            self._finished.popleft()
        rates = Counter(kind for _, kind in self._finished)
        per_minute = ", ".join(f"{kind[5:]} {count}/min" for kind, count in sorted(rates.items()))
        counts = ", ".join(f"{name} {n}" for name, n in sorted(self.state.counts().items()))
        return [f"{_BOLD}Rates{_RESET}  {per_minute or '-'}", f"{_BOLD}States{_RESET} {counts}"]

    def _tasks(self) -> list[str]:
        lines = [f"{_BOLD}Recent tasks{_RESET}"]
        for index, task in enumerate(self.state.tasks_by_time(self._task_rows())):
            runtime = f"{task.runtime:.3f}s" if task.runtime is not None else "-"
            row = f"  {task.uuid}  {task.state:<9} {runtime:>9}  {task.name}{task.args or ''}"
            lines.append(f"{_REVERSE}{row}{_RESET}" if index == self.selected else row)
        return lines

    def _failure(self) -> list[str]:
        failed = [t for t in self.state.tasks_by_time() if t.traceback]
        if not failed:
            return []
        latest = failed[0]
        trace = (latest.traceback or "").strip().splitlines()[-4:]
        return [f"{_BOLD}{_RED}Last failure{_RESET} {latest.uuid} {latest.exception}", *trace]


def _read_key(timeout: float) -> str:
    """A key pressed within ``timeout`` seconds, or ``""``; arrow keys as escape sequences."""
    if not sys.stdin.isatty():
        time.sleep(timeout)
        return ""
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if not ready:
        return ""
    return os.read(sys.stdin.fileno(), 8).decode(errors="replace")
