"""The task module the pool end-to-end tests give their workers (copied as e2e_tasks.py),
and the ``project`` fixture those tests import to get it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

TASKS_MODULE = textwrap.dedent(
    '''
    import logging
    import os
    import signal
    import time

    from tq import App, hookimpl
    from tq.errors import SoftTimeLimitExceeded

    app = App("e2e_tasks")
    if os.environ.get("E2E_WORKER_POOL"):  # the pool named only in the app's settings
        app.conf["worker_pool"] = os.environ["E2E_WORKER_POOL"]
    HERE = os.path.dirname(os.path.abspath(__file__))


    class ProcessInit:
        @hookimpl
        def tq_process_init(self, app):
            with open(os.path.join(HERE, "process_init.log"), "a") as log:
                log.write(f"{os.getpid()}\\n")


    app.register_plugin(ProcessInit())


    @app.task
    def burn(n: int) -> int:
        """Spin the CPU for ``n`` iterations; return the pid that did it."""
        total = 0
        for i in range(n):
            total += i * i
        return os.getpid()


    @app.task
    def pid() -> int:
        return os.getpid()


    @app.task
    def nap(seconds: float) -> int:
        time.sleep(seconds)
        return os.getpid()


    @app.task(bind=True)
    def hold(self, name: str) -> int:
        """Note the start in started.log, run until the file ``name`` exists; return the pid."""
        with open(os.path.join(HERE, "started.log"), "a") as log:
            log.write(f"{self.request.id}\\n")
        while not os.path.exists(os.path.join(HERE, name)):
            time.sleep(0.02)
        return os.getpid()


    @app.task
    def chatter(word: str) -> int:
        """Log ``word`` from the process running the task; return its pid."""
        logging.getLogger("e2e_tasks").warning("chatter %s from %d", word, os.getpid())
        time.sleep(0.2)
        return os.getpid()


    @app.task
    def green_nap(seconds: float) -> list:
        """Sleep with ``time.sleep`` (patched under green pools); report when and how."""
        started = time.time()
        time.sleep(seconds)
        return [started, time.time(), time.sleep.__module__]


    @app.task
    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)


    @app.task(soft_time_limit=0.5)
    def tidy_in_steps() -> str:
        """Sleep in short steps: a thread sees its soft limit between two of them."""
        try:
            for _ in range(600):
                time.sleep(0.05)
        except SoftTimeLimitExceeded:
            return "cleaned up"
        return "never"


    KEPT = []


    @app.task
    def hog(kib: int) -> int:
        """Allocate ``kib`` KiB and keep it (pages touched, so resident)."""
        KEPT.append(b"\x01" * (kib * 1024))
        return os.getpid()


    @app.task(rate_limit="5/s")
    def limited(i: int) -> float:
        return time.time()


    @app.task
    def unlimited(i: int) -> float:
        return time.time()
    '''
)


@pytest.fixture(name="project")
def pool_project(tmp_path: Path) -> Path:
    """The workers' folder, holding :data:`TASKS_MODULE` as ``e2e_tasks.py``."""
    (tmp_path / "e2e_tasks.py").write_text(TASKS_MODULE)
    return tmp_path
