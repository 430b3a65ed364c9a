"""Shared machinery for the benchmark suite: a private redis-server, timing, RSS, stats.

Nothing here knows about a particular task queue; ``peers/<name>.py`` adapters do.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

#: The counter every task body increments (completion detection, same for every peer).
DONE_KEY = "bench:done"
BENCH_DIR = Path(__file__).resolve().parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A throw-away ``redis-server`` without persistence, on a free port."""

    process: subprocess.Popen[bytes]
    url: str
    directory: tempfile.TemporaryDirectory[str]
    client: redis.Redis = field(init=False)

    def __post_init__(self) -> None:
        self.client = redis.Redis.from_url(self.url)

    @classmethod
    def start(cls) -> RedisServer:
        directory = tempfile.TemporaryDirectory(prefix="tq-bench-redis-")
        port = free_port()
        argv = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
        process = subprocess.Popen([*argv, "--dir", directory.name], stdout=subprocess.DEVNULL)
        server = cls(process, f"redis://127.0.0.1:{port}/0", directory)
        for _ in range(200):
            try:
                server.client.ping()
                return server
            except redis.ConnectionError:
                time.sleep(0.05)
        server.stop()
        raise SystemExit("redis-server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.directory.cleanup()

    def reset(self) -> None:
        """Empty the database (the server is private to this run)."""
        self.client.flushall()

    def done(self) -> int:
        return int(self.client.get(DONE_KEY) or 0)

    def cpu_seconds(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def version(self) -> str:
        return str(self.client.info("server")["redis_version"])


# -- processes -----------------------------------------------------------------------


def spawn(argv: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a worker command in its own session (so its children can be signalled)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            cwd=BENCH_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_group(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the worker's process group, then SIGKILL what is left after ``grace``."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # children a parent left behind
    process.wait()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def tree_rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` and all its descendants, in MB (process pools count whole)."""
    total_kb = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
        pending.extend(_children(current))
    return total_kb / 1024


def wait_for_count(
    server: RedisServer,
    target: int,
    process: subprocess.Popen[bytes] | None = None,
    timeout: float = 600.0,
) -> tuple[float, float]:
    """Poll the done counter until ``target``; return (time of first, time of last) body.

    Times are ``perf_counter`` values, accurate to the 2 ms poll.
    """
    first = 0.0
    deadline = time.perf_counter() + timeout
    while True:
        count = server.done()
        now = time.perf_counter()
        if count and not first:
            first = now
        if count >= target:
            return first, now
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode} at {count}/{target}")
        if now > deadline:
            raise RuntimeError(f"timed out at {count}/{target}")
        time.sleep(0.002)


# -- statistics ----------------------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def machine_info() -> dict[str, str]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "cpu": f"{os.cpu_count()} × {model}",
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": sys.version.split()[0],
    }


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# -- profiles ------------------------------------------------------------------------


def _frame_name(frame: str) -> str:
    """``"fn (path/to/module.py:12)"`` -> ``"module.py:fn"`` (line numbers merged)."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{short}:{name}"


def summarize_profile(raw: Path, top: int = 15) -> dict[str, object]:
    """Self and inclusive sample shares per function from py-spy's ``--format raw``."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for name in set(frames):
            inclusive[name] = inclusive.get(name, 0) + count

    def ranked(table: dict[str, int]) -> list[tuple[str, float]]:
        best = sorted(table.items(), key=lambda item: -item[1])[:top]
        return [(name, 100 * count / max(total, 1)) for name, count in best]

    return {"samples": total, "self": ranked(own), "inclusive": ranked(inclusive)}
