"""tq's First Steps, end to end: a real worker process, tasks sent to it, results read back.

Run it from anywhere with the Python that has tq installed::

    python docs/examples/first_steps/demo.py

What it does:

1. makes a fresh temporary directory, copies ``tasks.py`` there and works there, so the
   embedded SQLite broker and result store (``tq.sqlite3``) start empty;
2. starts ``tq -A tasks worker -l info -c 2 -P threads`` as a subprocess, using the
   ``tq`` command installed next to this Python;
3. sends ten ``add`` tasks and a ``mul`` from this process and prints each result;
4. sends ``divide(1, 0)`` and shows the failure: its state, error and traceback;
5. stops the worker with SIGTERM (warm shutdown) and waits for it to exit.

It exits 0 when everything worked. On any error it prints the worker's output and exits 1.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
WORKER_ARGS = ["-A", "tasks", "worker", "-l", "info", "-c", "2", "-P", "threads"]
RESULT_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 30.0


class DemoError(Exception):
    """A step of the demo failed; the message says which and why."""


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def detail(text: str) -> None:
    print(f"    {text}", flush=True)


def tq_command() -> list[str]:
    """The ``tq`` console script of the Python running this demo."""
    name = "tq.exe" if os.name == "nt" else "tq"
    script = Path(sys.executable).parent / name
    if not script.exists():
        raise DemoError(
            f"{script} does not exist: install tq into this Python first "
            f"({sys.executable} -m pip install tq)"
        )
    return [str(script)]


def start_worker(workdir: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start ``tq worker`` in ``workdir``, its output going to ``log``."""
    command = [*tq_command(), *WORKER_ARGS]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(workdir), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    say("Starting a worker: tq " + " ".join(WORKER_ARGS))
    worker = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    detail(f"worker pid {worker.pid}; its output is shown at the end")
    return worker


def wait_for(result: Any, worker: subprocess.Popen[bytes], *, propagate: bool = True) -> Any:
    """``result.get()``, but give up early if the worker process has died."""
    from tq import TimeoutError as ResultTimeout

    deadline = time.monotonic() + RESULT_TIMEOUT
    while True:
        try:
            return result.get(timeout=0.5, propagate=propagate)
        except ResultTimeout:
            if worker.poll() is not None:
                raise DemoError(
                    f"the worker exited with code {worker.returncode} "
                    f"before task {result.id} finished"
                ) from None
            if time.monotonic() > deadline:
                raise DemoError(
                    f"task {result.id} was not done after {RESULT_TIMEOUT:.0f}s "
                    f"(state {result.state})"
                ) from None


def call_tasks(worker: subprocess.Popen[bytes]) -> None:
    """Send tasks the way an application would, and check what comes back."""
    from tasks import add, divide, mul

    say("Sending 10 tasks with add.delay(i, i)")
    results = [(i, add.delay(i, i)) for i in range(10)]
    for i, result in results:
        value = wait_for(result, worker)
        detail(f"add({i}, {i}) = {value!s:<3} {result.state}  task {result.id}")
        if value != i + i:
            raise DemoError(f"add({i}, {i}) returned {value!r}, expected {i + i}")

    result = mul.delay(6, 7)
    value = wait_for(result, worker)
    say(f"mul.delay(6, 7).get() = {value}")
    if value != 42:
        raise DemoError(f"mul(6, 7) returned {value!r}, expected 42")

    say("Sending divide.delay(1, 0), a task that fails")
    result = divide.delay(1, 0)
    error = wait_for(result, worker, propagate=False)
    detail(f"state:     {result.state}")
    detail(f"error:     {error!r}")
    last_line = (result.traceback or "").strip().splitlines()[-1:] or ["(none stored)"]
    detail(f"traceback: ... {last_line[0]}")
    detail("(result.get() without propagate=False would raise the ZeroDivisionError here)")
    if result.state != "FAILURE" or not isinstance(error, ZeroDivisionError):
        raise DemoError(f"divide(1, 0) ended {result.state} with {error!r}, expected FAILURE")


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Warm shutdown: SIGTERM lets running tasks finish, then the worker exits."""
    say("Stopping the worker with SIGTERM (warm shutdown)")
    worker.send_signal(signal.SIGTERM)
    try:
        code = worker.wait(timeout=SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise DemoError(
            f"the worker did not exit within {SHUTDOWN_TIMEOUT:.0f}s of SIGTERM"
        ) from None
    if code != 0:
        raise DemoError(f"the worker exited with code {code} after SIGTERM, expected 0")
    detail("the worker exited with code 0")


def show_worker_output(log_path: Path) -> None:
    say("Worker output:")
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    for line in text.splitlines() or ["(nothing)"]:
        print(f"    | {line}")
    sys.stdout.flush()


def run(workdir: Path) -> None:
    """Every step of the demo inside ``workdir``; raises on the first failure."""
    shutil.copy(HERE / "tasks.py", workdir / "tasks.py")
    os.chdir(workdir)
    sys.path.insert(0, str(workdir))
    say(f"Working in {workdir}")
    detail("tasks.py is copied here; broker and results share ./tq.sqlite3 (no configuration)")
    log_path = workdir / "worker.log"
    with log_path.open("wb") as log:
        worker = start_worker(workdir, log)
        try:
            call_tasks(worker)
            stop_worker(worker)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            show_worker_output(log_path)
            _close_app()


def _close_app() -> None:
    # Close the SQLite connections of this process before the directory is removed.
    tasks = sys.modules.get("tasks")
    if tasks is not None:
        tasks.app.close()


def main() -> int:
    try:
        from tq import TqError
    except ImportError:
        print(f"tq is not installed for {sys.executable}; pip install tq", file=sys.stderr)
        return 1
    start_dir = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="tq-first-steps-") as tmp:
        try:
            run(Path(tmp))
        except (DemoError, TqError) as exc:
            print(f"\nERROR: {exc}", file=sys.stderr, flush=True)
            return 1
        finally:
            os.chdir(start_dir)
    say("Done: every task ran in the worker and its result came back.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
