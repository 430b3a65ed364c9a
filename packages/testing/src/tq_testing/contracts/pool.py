"""The contract every execution pool plugin passes, in real ``tq worker`` processes.

Subclass :class:`PoolContract` and name the pool; pytest then runs every contract test
against it::

    class TestMyPool(PoolContract):
        pool = "mypool"
        concurrency = 4

The tests start ``python -m tq -A tq_testing.contracts.pool_tasks worker -P mypool``
processes (so the pool's plugin must be installed, and green pools patch as they do in
production) on an embedded SQLite broker and result backend in a temporary folder
(``tq-transport-sqlite`` and ``tq-backend-sqlite``, both in the ``tq`` bundle; without
them the tests are skipped). Override the class-scoped ``pool_contract_env`` fixture to
run them on another broker. One worker serves every test of a class, except the warm
shutdown test, which starts and stops its own on a queue of its own.

The pool's :attr:`~tq_worker.pools.base.Pool.hard_kill` decides which of the two
blocked-task tests applies: a pool that can kill stops a task blocked in one long call
at its hard limit; one that cannot (``threads``, ``solo``) fails it when the call
returns.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final, final

import pytest

from tq import App, AsyncResult
from tq.errors import TimeLimitExceeded
from tq_testing.contracts.notes import noted
from tq_worker.worker import expand_nodename

TASKS_APP: Final = "tq_testing.contracts.pool_tasks"
# Limits short enough to keep the suite quick, long enough for a loaded machine.
SOFT_LIMIT: Final = 0.5
HARD_LIMIT: Final = 1.0
# Bounds every wait; a pool that behaves never comes near it.
PATIENCE: Final = 60.0
NODENAME: Final = "pool-contract@%h"
SHUTDOWN_QUEUE: Final = "tq-pool-contract-shutdown"
SHUTDOWN_NODENAME: Final = "pool-contract-shutdown@%h"


@final
class PoolWorker:
    """A ``tq worker`` process running the contract's tasks; its output goes to a file."""

    def __init__(self, cwd: Path, env: Mapping[str, str], args: Sequence[str]) -> None:
        self.log_path = cwd / f"worker-{time.monotonic_ns()}.log"
        command = [sys.executable, "-m", "tq", "-A", TASKS_APP, "worker", "-l", "info", *args]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                command, cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT
            )
        self.wait_for("ready.")

    @property
    def output(self) -> str:
        """Everything the worker printed and logged so far."""
        return self.log_path.read_text()

    def wait_for(self, text: str, timeout: float = PATIENCE) -> None:
        """Wait until the worker printed ``text``; fail if it exits first."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited ({self.process.returncode}):\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker never printed {text!r}:\n{self.output}")
            time.sleep(0.05)

    def stop(self, timeout: float = PATIENCE) -> int:
        """Warm shutdown (SIGTERM), killed if it takes longer than ``timeout``; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"worker ignored SIGTERM for {timeout}s:\n{self.output}") from None


def until(condition: Callable[[], object], what: str, timeout: float = PATIENCE) -> None:
    """Poll ``condition`` until it is true; ``timeout`` only bounds a broken pool."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


class PoolContract:
    """Behaviour every pool shows in a worker: results, failures, concurrency, time
    limits, warm shutdown and revokes.

    Attributes:
        pool: the pool's name, as ``tq worker -P`` takes it.
        concurrency: the worker's ``-c`` (1 for a pool that runs one task at a time).
        worker_args: more ``tq worker`` options for every worker the tests start.
    """

    pool: ClassVar[str]
    concurrency: ClassVar[int] = 2
    worker_args: ClassVar[tuple[str, ...]] = ()

    # -- fixtures (class-scoped: one worker serves the class) --------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def pool_contract_dir(cls, tmp_path_factory: pytest.TempPathFactory) -> Path:
        """Where the workers run and write their output (and the default broker file)."""
        return tmp_path_factory.mktemp(f"pool-contract-{cls.pool}")

    @pytest.fixture(scope="class")
    @classmethod
    def pool_contract_env(cls, pool_contract_dir: Path) -> dict[str, str]:
        """The workers' environment: ``TQ_BROKER_URL`` and ``TQ_RESULT_BACKEND`` name an
        empty broker and result store, which the client uses too."""
        for module in ("tq_transport_sqlite", "tq_backend_sqlite"):
            pytest.importorskip(module, reason="the pool contract's default broker is SQLite")
        url = f"sqlite:///{pool_contract_dir / 'tq.sqlite3'}"
        return {**os.environ, "TQ_BROKER_URL": url, "TQ_RESULT_BACKEND": url}

    @pytest.fixture(scope="class")
    @classmethod
    def pool_client(cls, pool_contract_env: dict[str, str]) -> Iterator[App]:
        """An app sending the contract's tasks by name and reading their results."""
        env = pool_contract_env
        app = App("tq-pool-contract", broker=env["TQ_BROKER_URL"], backend=env["TQ_RESULT_BACKEND"])
        yield app
        app.close()

    @pytest.fixture(scope="class")
    @classmethod
    def pool_worker(
        cls, pool_contract_dir: Path, pool_contract_env: dict[str, str]
    ) -> Iterator[PoolWorker]:
        """The worker running the pool, shared by the class; it must stop cleanly."""
        worker = cls.start_worker(pool_contract_dir, pool_contract_env, "-n", NODENAME)
        yield worker
        assert worker.stop() == 0, f"the worker did not stop cleanly:\n{worker.output}"

    @pytest.fixture(scope="class")
    @classmethod
    def pool_hard_kill(cls, pool_client: App) -> bool:
        """Whether the pool declares it can stop a task that does not cooperate."""
        return bool(pool_client.plugins.get("pool", cls.pool).load().hard_kill)

    @classmethod
    def start_worker(cls, cwd: Path, env: Mapping[str, str], *args: str) -> PoolWorker:
        """Start a worker running the pool; returns once it consumes."""
        pool_args = ("-P", cls.pool, "-c", str(cls.concurrency), *cls.worker_args)
        # A short fetch timeout lets the workers stop quickly.
        return PoolWorker(cwd, {"TQ_WORKER_FETCH_TIMEOUT": "0.2", **env}, [*pool_args, *args])

    def occupy_every_slot(
        self, client: App, folder: Path, **options: Any
    ) -> list[AsyncResult[Any]]:
        """Start ``concurrency`` tasks that run until ``folder``/release exists."""
        holders = [
            client.send_task("tq_pool_contract.hold", (str(folder), "release"), **options)
            for _ in range(self.concurrency)
        ]
        until(
            lambda: len(noted(folder, "started")) == self.concurrency,
            f"{self.concurrency} tasks run at once",
        )
        return holders

    def assert_concurrency(self, client: App, folder: Path) -> None:
        """``concurrency`` tasks run at the same time."""
        n = self.concurrency
        meeting = [
            client.send_task("tq_pool_contract.meet", (str(folder), n, PATIENCE / 2))
            for _ in range(n)
        ]
        # Each task waits until all have arrived: they can only all see n if n ran at once.
        assert [result.get(timeout=PATIENCE) for result in meeting] == [n] * n

    # -- running tasks -------------------------------------------------------------------

    def test_a_task_runs_and_its_result_is_stored(
        self, pool_client: App, pool_worker: PoolWorker
    ) -> None:
        result = pool_client.send_task("tq_pool_contract.add", (2, 3))
        assert result.get(timeout=PATIENCE) == 5
        assert result.state == "SUCCESS"

    def test_an_exception_is_stored_as_failure_with_its_type_and_message(
        self, pool_client: App, pool_worker: PoolWorker
    ) -> None:
        result = pool_client.send_task("tq_pool_contract.fail", ("the pool contract fails",))
        with pytest.raises(ValueError, match=r"^the pool contract fails$"):
            result.get(timeout=PATIENCE)
        assert result.state == "FAILURE"
        assert isinstance(result.result, ValueError)

    def test_concurrency_tasks_run_at_the_same_time(
        self, pool_client: App, pool_worker: PoolWorker, tmp_path: Path
    ) -> None:
        self.assert_concurrency(pool_client, tmp_path)

    # -- time limits ---------------------------------------------------------------------

    def test_a_task_catching_its_soft_time_limit_returns_a_value(
        self, pool_client: App, pool_worker: PoolWorker
    ) -> None:
        result = pool_client.send_task(
            "tq_pool_contract.catch_soft_limit", (PATIENCE / 2,), soft_time_limit=SOFT_LIMIT
        )
        assert result.get(timeout=PATIENCE) == "soft time limit caught"
        assert result.state == "SUCCESS"

    def test_a_task_past_its_hard_time_limit_fails_and_the_pool_carries_on(
        self, pool_client: App, pool_worker: PoolWorker, tmp_path: Path
    ) -> None:
        stopped = pool_client.send_task(
            "tq_pool_contract.overrun", (PATIENCE / 2,), time_limit=HARD_LIMIT
        )
        with pytest.raises(TimeLimitExceeded):
            stopped.get(timeout=PATIENCE)
        assert stopped.state == "FAILURE"
        # Back at full strength: a killed child was replaced, a thread was freed.
        self.assert_concurrency(pool_client, tmp_path)

    def test_a_pool_that_can_kill_stops_a_task_blocked_in_one_call_at_its_hard_limit(
        self, pool_client: App, pool_worker: PoolWorker, pool_hard_kill: bool
    ) -> None:
        if not pool_hard_kill:
            pytest.skip(f"the {self.pool} pool cannot kill a task (Pool.hard_kill is false)")
        sent = time.monotonic()
        blocked = pool_client.send_task(
            "tq_pool_contract.block", (PATIENCE / 2,), time_limit=HARD_LIMIT
        )
        with pytest.raises(TimeLimitExceeded):
            blocked.get(timeout=PATIENCE)
        assert time.monotonic() - sent < PATIENCE / 4
        assert pool_client.send_task("tq_pool_contract.add", (1, 1)).get(timeout=PATIENCE) == 2

    def test_a_pool_that_cannot_kill_fails_a_blocked_task_once_its_call_returns(
        self, pool_client: App, pool_worker: PoolWorker, pool_hard_kill: bool
    ) -> None:
        if pool_hard_kill:
            pytest.skip(f"the {self.pool} pool kills tasks (Pool.hard_kill is true)")
        blocked = pool_client.send_task(
            "tq_pool_contract.block", (HARD_LIMIT * 1.5,), time_limit=HARD_LIMIT / 2
        )
        # The limit passed while the task slept in one call: it still ends as a failure.
        with pytest.raises(TimeLimitExceeded):
            blocked.get(timeout=PATIENCE)
        assert pool_client.send_task("tq_pool_contract.add", (1, 1)).get(timeout=PATIENCE) == 2

    # -- revokes and shutdown --------------------------------------------------------------

    def test_a_revoked_task_waiting_for_a_free_slot_never_runs(
        self, pool_client: App, pool_worker: PoolWorker, tmp_path: Path
    ) -> None:
        holders = self.occupy_every_slot(pool_client, tmp_path)
        waiting = pool_client.send_task("tq_pool_contract.record", (str(tmp_path), 1))
        time.sleep(0.5)  # the worker may reserve it meanwhile: revoked either way
        replies = pool_client.control.revoke(
            waiting.id, destination=[expand_nodename(NODENAME)], reply=True, timeout=10
        )
        assert replies, "the worker never answered the revoke"
        (tmp_path / "release").touch()
        assert [holder.get(timeout=PATIENCE) for holder in holders] == ["release"] * len(holders)
        until(lambda: waiting.state == "REVOKED", "the revoked task is stored as REVOKED")
        assert waiting.id not in noted(tmp_path, "ran")

    def test_warm_shutdown_lets_running_tasks_finish_and_loses_no_message(
        self,
        pool_contract_dir: Path,
        pool_contract_env: dict[str, str],
        pool_client: App,
        tmp_path: Path,
    ) -> None:
        own_queue = ("-Q", SHUTDOWN_QUEUE, "-n", SHUTDOWN_NODENAME)
        first = self.start_worker(pool_contract_dir, pool_contract_env, *own_queue)
        try:
            holders = self.occupy_every_slot(pool_client, tmp_path, queue=SHUTDOWN_QUEUE)
            waiting = [
                pool_client.send_task(
                    "tq_pool_contract.record", (str(tmp_path), i), queue=SHUTDOWN_QUEUE
                )
                for i in range(3)
            ]
            time.sleep(0.5)  # the worker may reserve some of them meanwhile
            first.process.send_signal(signal.SIGTERM)
            first.wait_for("Warm shutdown")
            time.sleep(0.5)
            assert first.process.poll() is None, "the worker left while its tasks ran"
            (tmp_path / "release").touch()
            assert [h.get(timeout=PATIENCE) for h in holders] == ["release"] * len(holders)
            assert first.process.wait(PATIENCE) == 0, first.output
        finally:
            first.stop()
        # What the first worker had not started went back to the queue: the next runs it.
        second = self.start_worker(pool_contract_dir, pool_contract_env, *own_queue)
        try:
            assert [result.get(timeout=PATIENCE) for result in waiting] == [0, 1, 2]
        finally:
            second.stop()
        assert sorted(noted(tmp_path, "finished")) == sorted(h.id for h in holders)
        assert sorted(noted(tmp_path, "ran")) == sorted(w.id for w in waiting)  # once each
