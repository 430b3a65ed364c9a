"""A real ``tq worker`` process on Redis, driven by client processes.

Each test uses db 15 of the machine's Redis under a key prefix of its own; the tests
that stop Redis start a private ``redis-server`` instead.
"""

from __future__ import annotations

import collections
import json
import os
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.transport_redis import redis_services
from tests.transport_redis.redis_services import RedisServer

from .conftest import WorkerProcess, run_client

pytestmark = pytest.mark.e2e

# The Redis fixtures (tests/e2e/conftest.py belongs to the SQLite end-to-end tests).
redis_url = redis_services.redis_url
key_prefix = redis_services.key_prefix
private_redis = redis_services.private_redis

# The e2e task module, noting also when each execution happened and when it was due.
REDIS_TASKS = textwrap.dedent(
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
        eta = self.request.eta.timestamp() if self.request.eta else 0.0
        with open(LOG, "a") as log:
            log.write(f"{self.request.id} {i} {time.time()} {eta}\\n")
        return i * 2
    '''
)

SEND_ONLY = """
    import json
    from e2e_tasks import record

    print(json.dumps([record.delay(i, {pause}).id for i in range({count})]))
"""

# Collects results, riding out a broker or backend that is briefly unreachable.
COLLECT = """
    import json, time
    from tq.errors import TqError
    from e2e_tasks import app

    values = []
    for task_id in json.load(open("ids.json")):
        while True:
            try:
                values.append(app.AsyncResult(task_id).get(timeout=240))
                break
            except TqError:
                time.sleep(0.2)
    print(json.dumps(values))
"""


def _env(base: dict[str, str], broker: str, backend: str, prefix: str) -> dict[str, str]:
    env = dict(base)
    env["TQ_BROKER_URL"] = broker
    env["TQ_RESULT_BACKEND"] = backend
    # A short visibility timeout so messages of a killed worker come back quickly.
    options = {"visibility_timeout": 3, "global_keyprefix": prefix}
    env["TQ_BROKER_TRANSPORT_OPTIONS"] = json.dumps(options)
    env["TQ_RESULT_BACKEND_TRANSPORT_OPTIONS"] = json.dumps({"global_keyprefix": prefix})
    return env


@pytest.fixture
def project_env(project: Path, redis_url: str, key_prefix: str) -> dict[str, str]:
    """The e2e project on the shared Redis (db 15, this test's key prefix)."""
    (project / "e2e_tasks.py").write_text(REDIS_TASKS)
    env = {**os.environ, "PYTHONPATH": str(project)}
    return _env(env, redis_url, redis_url, key_prefix)


def executions(project: Path) -> list[tuple[int, float, float]]:
    """(i, executed at, due at) for every execution so far."""
    log = project / "executions.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [(int(i), float(at), float(eta)) for _, i, at, eta in (ln.split() for ln in lines)]


def counts(project: Path) -> collections.Counter[int]:
    return collections.Counter(i for i, _, _ in executions(project))


def send(project: Path, env: dict[str, str], count: int, pause: float = 0.0) -> list[str]:
    ids: list[str] = json.loads(
        run_client(project, env, SEND_ONLY.format(count=count, pause=pause))
    )
    (project / "ids.json").write_text(json.dumps(ids))
    return ids


def collect(project: Path, env: dict[str, str]) -> list[int]:
    values: list[int] = json.loads(run_client(project, env, COLLECT, timeout=300))
    return values


def wait_for_executions(project: Path, at_least: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(executions(project)) < at_least:
        assert time.monotonic() < deadline, f"fewer than {at_least} executions"
        time.sleep(0.05)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_redis_worker_completes_ten_thousand_tasks(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker("-P", "threads", "-c", "8")
    send(project, project_env, 10_000)
    assert collect(project, project_env) == [i * 2 for i in range(10_000)]
    assert set(counts(project)) == set(range(10_000))
    assert worker.stop() == 0


@pytest.mark.slow
def test_redis_tasks_survive_a_worker_sigkilled_half_way(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    first = start_worker("-P", "threads", "-c", "4")
    send(project, project_env, 10_000, pause=0.001)
    wait_for_executions(project, 5000)
    first.kill()
    killed_at = len(executions(project))
    start_worker("-P", "threads", "-c", "4")
    assert collect(project, project_env) == [i * 2 for i in range(10_000)]
    runs = counts(project)
    duplicates = sum(n - 1 for n in runs.values())
    print(f"10000 tasks; worker SIGKILLed after {killed_at} executions; duplicates: {duplicates}")
    assert set(runs) == set(range(10_000)), "a task was lost"
    # Only what the killed worker had leased may run twice: its prefetch window (4 x 4)
    # and the finished tasks whose acknowledgements waited for the next batch (fewer
    # than the window: a batch goes out once half the window is free).
    assert duplicates <= 2 * 4 * 4 + 4


def test_redis_worker_acknowledges_finished_tasks_without_waiting_for_more_work(
    project: Path,
    project_env: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
    redis_url: str,
    key_prefix: str,
) -> None:
    # Acknowledgements travel in batches with the next fetch; a worker that has nothing
    # more to fetch still sends them, so finished tasks do not stay leased.
    worker = start_worker("-P", "threads", "-c", "2")
    send(project, project_env, 7)
    assert collect(project, project_env) == [i * 2 for i in range(7)]
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 5
    while client.hlen(f"{key_prefix}_tq.leases") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.hlen(f"{key_prefix}_tq.leases") == 0
    assert worker.stop() == 0
    client.close()


def test_redis_task_longer_than_the_visibility_timeout_runs_once(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    # Visibility timeout 3 s, task 9 s: the lease is renewed while it runs, so the
    # second worker never receives the message.
    start_worker("-P", "threads", "-c", "1", "-n", "one@%h")
    start_worker("-P", "threads", "-c", "1", "-n", "two@%h")
    send(project, project_env, 1, pause=9)
    assert collect(project, project_env) == [0]
    assert counts(project) == collections.Counter({0: 1})


@pytest.mark.slow
def test_redis_countdown_tasks_wait_in_redis_not_in_the_worker(
    project: Path,
    project_env: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
    redis_url: str,
    key_prefix: str,
) -> None:
    worker = start_worker("-P", "threads", "-c", "4")
    before = rss_kib(worker.process.pid)
    run_client(
        project,
        project_env,
        """
        import json
        from e2e_tasks import record

        ids = [record.apply_async((i,), countdown=1 + i % 30).id for i in range(1000)]
        open("ids.json", "w").write(json.dumps(ids))
        """,
    )
    client = redis.Redis.from_url(redis_url)
    waiting = client.zcard(f"{key_prefix}_tq.delayed.tq")
    time.sleep(0.5)
    during = rss_kib(worker.process.pid)
    assert collect(project, project_env) == [i * 2 for i in range(1000)]
    after = rss_kib(worker.process.pid)
    runs = executions(project)
    print(
        f"1000 countdown tasks; {waiting} waiting in Redis after sending; worker RSS "
        f"{before} KiB before, {during} KiB while they waited, {after} KiB after"
    )
    assert waiting > 900  # the first ones may already be due
    assert counts(project) == collections.Counter({i: 1 for i in range(1000)})
    assert all(executed >= due for _, executed, due in runs), "a task ran before its ETA"
    # Holding 1000 messages would show; a few MiB of allocator noise would not.
    assert during - before < 8 * 1024
    client.close()


@pytest.mark.slow
def test_redis_worker_resumes_after_redis_is_down_for_ten_seconds(
    project: Path,
    project_env: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
    private_redis: RedisServer,
) -> None:
    env = _env(project_env, private_redis.url, private_redis.url, "")
    project_env.update(env)  # the worker started below uses this environment
    worker = start_worker("-P", "threads", "-c", "4")
    send(project, env, 3000, pause=0.002)
    wait_for_executions(project, 300)
    # A real stop: Redis saves its data and exits; nothing answers for ten seconds.
    private_redis.shutdown_saving()
    time.sleep(10)
    private_redis.start()
    assert collect(project, env) == [i * 2 for i in range(3000)]
    assert set(counts(project)) == set(range(3000))
    assert "Broker reachable again" in worker.output
    assert worker.stop() == 0


def test_redis_result_that_cannot_be_stored_is_not_acknowledged(
    project: Path,
    project_env: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
    redis_url: str,
    key_prefix: str,
    private_redis: RedisServer,
) -> None:
    # Broker on the shared Redis, results on a private one that is down at first.
    project_env.update(_env(project_env, redis_url, private_redis.url, key_prefix))
    private_redis.stop()
    worker = start_worker("-P", "threads", "-c", "1")
    [task_id] = send(project, project_env, 1)
    worker.wait_for("the result could not be stored")
    private_redis.start()
    assert collect(project, project_env) == [0]
    assert counts(project)[0] >= 2  # ran again: the first run's message was not acked
    worker.stop()
    assert task_id in worker.output
