"""Helpers for end-to-end tests: a real ``tq worker`` process on the embedded broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tq import App

TQ = str(Path(sys.executable).parent / "tq")

TASKS_MODULE = textwrap.dedent(
    '''
    import os
    import time

    from tq import App

    app = App("e2e_tasks")
    LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "executions.log")


    @app.task(bind=True)
    def record(self, i: int, pause: float = 0.0) -> int:
        """Double ``i``, noting each execution so duplicates can be counted."""
        if pause:
            time.sleep(pause)
        with open(LOG, "a") as log:
            log.write(f"{self.request.id} {i}\\n")
        return i * 2
    '''
)


class WorkerProcess:
    """A ``tq worker`` subprocess whose output is captured in a file."""

    def __init__(
        self, cwd: Path, env: dict[str, str], *args: str, new_session: bool = False
    ) -> None:
        """``new_session``: run in a session and process group of its own, which a test
        may signal as a whole (as a terminal does on Ctrl-C) without reaching pytest."""
        self.log_path = cwd / f"worker-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [TQ, "-A", "e2e_tasks", "worker", "-l", "info", *args],
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
        self.wait_for("ready.")

    @property
    def output(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited ({self.process.returncode}):\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker never printed {text!r}:\n{self.output}")
            time.sleep(0.05)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory holding the e2e task module; the embedded SQLite file goes here too."""
    (tmp_path / "e2e_tasks.py").write_text(TASKS_MODULE)
    return tmp_path


@pytest.fixture
def project_env(project: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(project)
    # A short visibility timeout so messages of a killed worker come back quickly.
    env["TQ_BROKER_TRANSPORT_OPTIONS"] = '{"visibility_timeout": 3}'
    return env


@pytest.fixture
def start_worker(
    project: Path, project_env: dict[str, str]
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(*args: str) -> WorkerProcess:
        worker = WorkerProcess(project, project_env, *args)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def client(project: Path) -> Iterator[App]:
    """An app in this process on the workers' embedded broker (tq.sqlite3 in their cwd)."""
    url = f"sqlite:///{project / 'tq.sqlite3'}"
    app = App("client", broker=url, backend=url)
    yield app
    app.close()


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def client_json(project: Path, env: dict[str, str], code: str) -> object:
    """Run ``code`` in a client process; the JSON value of its last line of output."""
    return json.loads(run_client(project, env, code).strip().splitlines()[-1])


def run_client(project: Path, env: dict[str, str], code: str, timeout: float = 180) -> str:
    """Run ``code`` in a separate Python process in ``project``; return its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"client failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout
