"""The scenarios, each a method of :class:`Suite`; raw samples collected per repetition."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import (
    BENCH_DIR,
    RedisServer,
    percentile,
    spawn,
    stop_group,
    summarize_profile,
    tree_rss_mb,
    wait_for_count,
)

PYTHON = sys.executable
Samples = dict[str, list[float]]


class Suite:
    """Runs every scenario against one private Redis, collecting raw samples."""

    def __init__(
        self, server: RedisServer, args: argparse.Namespace, scratch: Path, peers: list[str]
    ) -> None:
        self.server = server
        self.args = args
        self.scratch = scratch
        self.peers = peers
        self.logs = BENCH_DIR / "logs"
        self.logs.mkdir(exist_ok=True)
        self.specs = {name: self._spec(name) for name in peers}
        self.samples: dict[str, dict[str, Any]] = {name: {} for name in peers}

    # -- plumbing ----------------------------------------------------------------

    def env(self, peer: str, results: bool, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            **self.specs.get(peer, {}).get("env", {}),
            "PYTHONPATH": str(BENCH_DIR),
            "BENCH_URL": self.server.url,
            "BENCH_RESULTS": "1" if results else "0",
            **extra,
        }

    def client(self, peer: str, command: str, n: int, env: dict[str, str]) -> Any:
        done = subprocess.run(
            [PYTHON, "-m", f"peers.{peer}", command, str(n)],
            cwd=BENCH_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode:
            raise RuntimeError(f"{peer} {command} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def _spec(self, peer: str) -> dict[str, Any]:
        env = {**os.environ, "PYTHONPATH": str(BENCH_DIR), "BENCH_URL": self.server.url}
        spec: dict[str, Any] = self.client(peer, "spec", 0, env)
        return spec

    def versions(self) -> dict[str, str]:
        return {spec["dist"]: spec["version"] for spec in self.specs.values()}

    def add(self, peer: str, key: str, value: float) -> None:
        self.samples[peer].setdefault(key, []).append(value)

    def log(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    # -- scenarios ---------------------------------------------------------------

    def drain(
        self, peer: str, variant: str, n: int, fill: str = "publish", **extra: str
    ) -> dict[str, float]:
        """Queue ``n`` tasks, start the worker, time first to last body; check the count."""
        results, argv = self.specs[peer]["workers"][variant]
        env = self.env(peer, results, **extra)
        self.server.reset()
        filled = self.client(peer, fill, n - 1, env)  # +1 warm-up call = n queued
        out = {"publish_rate": (n - 1) / filled["seconds"]}
        launched = time.perf_counter()
        worker = spawn(argv, env, self.logs / f"{peer}-{variant}.log")
        try:
            first, last = wait_for_count(self.server, n, worker)
            time.sleep(0.5)  # late duplicates would show up here
            executed = self.server.done()
            out |= {
                "drain_rate": (n - 1) / max(last - first, 1e-9),
                "drain_rate_with_startup": n / (last - launched),
                "rss_after_mb": tree_rss_mb(worker.pid),
                "executed": executed,
            }
        finally:
            stop_group(worker)
        if executed != n:
            self.log(f"!! {peer} {variant}: {executed} bodies ran for {n} tasks")
        return out

    def idle_rss(self, peer: str, variant: str) -> float:
        results, argv = self.specs[peer]["workers"][variant]
        self.server.reset()
        worker = spawn(argv, self.env(peer, results), self.logs / f"{peer}-{variant}.log")
        try:
            time.sleep(3.0)
            return tree_rss_mb(worker.pid)
        finally:
            stop_group(worker)

    def roundtrip(self, peer: str) -> dict[str, float]:
        workers = self.specs[peer]["workers"]
        variant = next((v for v, (res, _) in workers.items() if res), next(iter(workers)))
        argv = workers[variant][1]
        env = self.env(peer, True)
        self.server.reset()
        worker = spawn(argv, env, self.logs / f"{peer}-rtt.log")
        try:
            time.sleep(3.0)
            idle = tree_rss_mb(worker.pid)
            lat = self.client(peer, "rtt", self.args.rtt, env)["latencies"]
        finally:
            stop_group(worker)
        return {
            "rtt_p50_ms": 1000 * percentile(lat, 50),
            "rtt_p99_ms": 1000 * percentile(lat, 99),
            "rtt_idle_rss_mb": idle,
        }

    def peer_round(self, peer: str, rep: int) -> None:
        spec = self.specs[peer]
        n = spec["drain_tasks"] or self.args.tasks
        for variant in spec["workers"]:
            self.log(f"rep {rep}: {peer} drain {variant} ({n})")
            for key, value in self.drain(peer, variant, n).items():
                self.add(peer, f"{key}|{variant}", value)
        self.log(f"rep {rep}: {peer} round trip")
        for key, value in self.roundtrip(peer).items():
            self.add(peer, key, value)
        if rep == 0:
            for variant in spec["workers"]:
                self.add(peer, f"idle_rss_mb|{variant}", self.idle_rss(peer, variant))

    def tq_extras(self, rep: int) -> None:
        """Bulk publish, scale, ETA memory, SQLite broker and the in-process memory run."""
        n = self.args.tasks
        self.server.reset()
        bulk = self.client("tq", "bulk", n, self.env("tq", False))
        self.add("tq", "bulk_publish_rate", n / bulk["seconds"])
        sizes = [1000, 10_000] + ([self.args.scale_max] if rep < self.args.scale_max_reps else [])
        for size in sizes:
            self.log(f"rep {rep}: tq scale {size}")
            out = self.drain("tq", "threads", size, fill="bulk")
            self.add("tq", f"scale_rate|{size}", out["drain_rate"])
            self.add("tq", f"scale_executed|{size}", out["executed"])
        if rep == 0:
            self.add("tq", "eta_rss", self.eta_rss())
        self.log(f"rep {rep}: tq sqlite + memory")
        db = self.scratch / f"broker-{rep}.sqlite3"
        out = self.drain("tq", "threads", n, BENCH_BROKER=f"sqlite:///{db}")
        self.add("tq", "sqlite_publish_rate", out["publish_rate"])
        self.add("tq", "sqlite_drain_rate", out["drain_rate"])
        self.server.reset()
        mem = self.client("tq", "memory", n, self.env("tq", False, BENCH_BROKER="memory://"))
        self.add("tq", "memory_publish_rate", n / mem["publish_seconds"])
        self.add("tq", "memory_drain_rate", n / mem["drain_seconds"])

    def eta_rss(self) -> float:
        """Growth of an idle tq worker's RSS with ``scale_max`` tasks due in an hour."""
        _, argv = self.specs["tq"]["workers"]["threads"]
        env = self.env("tq", False)
        self.server.reset()
        worker = spawn(argv, env, self.logs / "tq-eta.log")
        try:
            time.sleep(3.0)
            before = tree_rss_mb(worker.pid)
            self.client("tq", "eta", self.args.scale_max, env)
            time.sleep(5.0)
            after = tree_rss_mb(worker.pid)
        finally:
            stop_group(worker)
        self.log(f"tq ETA: {before:.1f} -> {after:.1f} MB, {self.server.done()} ran early")
        return after - before

    def profile(self) -> dict[str, Any]:
        """py-spy on the publishing client and on tq's threads, solo and processes workers
        during a drain (the processes worker: its children's samples together)."""
        py_spy = str(Path(PYTHON).parent / "py-spy")
        n = self.args.tasks
        out: dict[str, Any] = {}
        env = self.env("tq", False)
        self.server.reset()
        raw = self.logs / "profile-publish.txt"
        subprocess.run(
            [py_spy, "record", "-r", "500", "-f", "raw", "-o", str(raw), "--",
             PYTHON, "-m", "peers.tq", "publish", str(n)],
            cwd=BENCH_DIR, env=env, check=True, capture_output=True,
        )  # fmt: skip
        out["publish"] = summarize_profile(raw)
        for variant in ("threads", "solo", "processes"):
            _, argv = self.specs["tq"]["workers"][variant]
            self.server.reset()
            self.client("tq", "bulk", n - 1, env)
            worker = spawn(argv, env, self.logs / "tq-profile.log")
            raw = self.logs / f"profile-drain-{variant}.txt"
            spy = subprocess.Popen(
                [py_spy, "record", "-r", "500", "-f", "raw", "-o", str(raw),
                 "-p", str(worker.pid), *(["--subprocesses"] if variant == "processes" else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                wait_for_count(self.server, n, worker)
            finally:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
                stop_group(worker)
            out[f"drain_{variant}"] = summarize_profile(raw)
        return out

    # -- the whole run -------------------------------------------------------------

    def run_all(self) -> dict[str, Any]:
        for rep in range(self.args.reps):
            order = self.peers[rep % len(self.peers) :] + self.peers[: rep % len(self.peers)]
            for peer in order:
                self.peer_round(peer, rep)
                if peer == "tq":
                    self.tq_extras(rep)
        profile = {} if self.args.no_profile or "tq" not in self.peers else self.profile()
        return {"samples": self.samples, "specs": self.specs, "profile": profile}
