"""Publish and drain throughput on Redis: tq next to Celery 5, on a private redis-server.

Usage::

    python benchmarks/redis_throughput.py [--tasks 20000] [--concurrency 4]

Starts ``redis-server`` on a free port (no persistence), then for each of tq and Celery:
a client process publishes ``--tasks`` no-op tasks (results ignored) and reports
publish tasks/s; then one worker (thread pool, ``--concurrency`` threads) is started and
timed from launch until every task has run (each task increments a Redis counter, the
only work both sides do). Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from importlib.metadata import version
from pathlib import Path

import redis

BIN = Path(sys.executable).parent

TQ_TASKS = """
import os, redis
from tq import App

app = App("bench_tasks", broker_url=os.environ["BENCH_URL"], celery_compat=False)
counter = redis.Redis.from_url(os.environ["BENCH_URL"])

@app.task(ignore_result=True)
def noop() -> None:
    counter.incr("bench:done")
"""

CELERY_TASKS = """
import os, redis
from celery import Celery

app = Celery("bench_tasks", broker=os.environ["BENCH_URL"])
app.conf.task_ignore_result = True
counter = redis.Redis.from_url(os.environ["BENCH_URL"])

@app.task(name="bench_tasks.noop")
def noop():
    counter.incr("bench:done")
"""

CELERY_WORKER = [
    *(str(BIN / "celery"), "-A", "bench_tasks", "worker", "-P", "threads", "-l", "warning"),
    *("--without-mingle", "--without-gossip", "--without-heartbeat", "-c"),
]

PUBLISH = """
import sys, time
from bench_tasks import noop
n = int(sys.argv[1])
noop.delay()  # connect first: the loop measures publishing only
started = time.perf_counter()
for _ in range(n - 1):
    noop.delay()
print(time.perf_counter() - started)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(200):
        try:
            client.ping()
            return process, url
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def run(
    name: str, tasks_module: str, worker_cmd: list[str], url: str, n: int
) -> tuple[float, float]:
    client = redis.Redis.from_url(url)
    client.flushdb()  # the private server's own database
    with tempfile.TemporaryDirectory() as project:
        Path(project, "bench_tasks.py").write_text(textwrap.dedent(tasks_module))
        env = {**os.environ, "PYTHONPATH": project, "BENCH_URL": url}
        done = subprocess.run(
            [sys.executable, "-c", PUBLISH, str(n)],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        publish_rate = (n - 1) / float(done.stdout.strip())
        started = time.perf_counter()
        worker = subprocess.Popen(
            worker_cmd, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while int(client.get("bench:done") or 0) < n:
            if worker.poll() is not None:
                raise SystemExit(f"{name} worker exited with {worker.returncode}")
            time.sleep(0.01)
        drain_rate = n / (time.perf_counter() - started)
        worker.terminate()
        worker.wait(60)
    return publish_rate, drain_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    c = str(args.concurrency)
    with tempfile.TemporaryDirectory() as directory:
        server, url = start_redis(directory)
        try:
            results = {
                "tq": run(
                    "tq",
                    TQ_TASKS,
                    [
                        str(BIN / "tq"),
                        "-A",
                        "bench_tasks",
                        "worker",
                        "-P",
                        "threads",
                        "-c",
                        c,
                        "-l",
                        "warning",
                    ],
                    url,
                    args.tasks,
                ),
                "Celery": run(
                    "Celery",
                    CELERY_TASKS,
                    [*CELERY_WORKER, c],
                    url,
                    args.tasks,
                ),
            }
        finally:
            server.terminate()
            server.wait()
    server_version = (
        subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
        .stdout.split()[2]
        .removeprefix("v=")
    )
    print(
        f"{args.tasks} no-op tasks, thread pool x{c}; Python {platform.python_version()}, "
        f"redis-py {version('redis')}, {server_version}, tq-core {version('tq-core')}, "
        f"celery {version('celery')}, kombu {version('kombu')}; {os.cpu_count()} CPUs\n"
    )
    print("| system | publish (tasks/s) | worker drain (tasks/s) |")
    print("|---|---|---|")
    for name, (publish_rate, drain_rate) in results.items():
        print(f"| {name} | {publish_rate:,.0f} | {drain_rate:,.0f} |")


if __name__ == "__main__":
    main()
