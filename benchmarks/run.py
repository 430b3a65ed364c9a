"""The benchmark suite: tq next to Celery, dramatiq, huey, rq and taskiq on one Redis.

Usage (from the repository root)::

    python benchmarks/run.py [--reps 3] [--tasks 20000] [--scale-max 100000]

Creates ``benchmarks/.venv`` (current peer releases from PyPI, tq editable from this
checkout) on first use and re-runs itself there; starts a private ``redis-server``;
runs every scenario for every library, interleaved, ``--reps`` times; profiles tq's
worker and client with py-spy; writes ``benchmarks/results/<date>.json`` (a later run
that day: ``<date>T<HHMM>.json``) and the tables between the markers in
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import venv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
VENV = BENCH_DIR / ".venv"
PEERS = ("tq", "celery", "dramatiq", "huey", "rq", "taskiq")
REQUIREMENTS = [
    "celery[redis]>=5,<6",
    "dramatiq[redis]",
    "rq",
    "huey",
    "taskiq",
    "taskiq-redis",
    "redis",
    "py-spy",
    *(
        f"-e{ROOT / 'packages' / name}"
        for name in (
            "core",
            "worker",
            "transport-redis",
            "backend-redis",
            "transport-sqlite",
            "backend-sqlite",
            "pool-prefork",
        )
    ),
]


def ensure_venv() -> None:
    """Re-run this script inside ``benchmarks/.venv``, creating it first if needed."""
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not python.exists():
        print(f"creating {VENV} and installing the peers", flush=True)
        venv.create(VENV, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--rtt", type=int, default=300)
    parser.add_argument("--scale-max", type=int, default=100_000)
    parser.add_argument("--scale-max-reps", type=int, default=1)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-doc", action="store_true", help="Only write the JSON.")
    args = parser.parse_args()
    ensure_venv()
    # SIGTERM unwinds like Ctrl-C, so the workers and redis-server are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.path.insert(0, str(BENCH_DIR))
    from harness import RedisServer, machine_info, uptime
    from scenarios import Suite

    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    record: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command.strip(),
        "machine": machine_info(),
        "uptime_before": uptime(),
        "args": vars(args),
    }
    started = time.perf_counter()
    server = RedisServer.start()
    record["redis"] = server.version()
    try:
        with tempfile.TemporaryDirectory(prefix="tq-bench-") as scratch:
            suite = Suite(server, args, Path(scratch), args.peers.split(","))
            record["versions"] = suite.versions()
            record["results"] = suite.run_all()
    finally:
        server.stop()
    record["uptime_after"] = uptime()
    record["minutes"] = (time.perf_counter() - started) / 60
    now = datetime.now(UTC)
    out = BENCH_DIR / "results" / f"{now:%Y-%m-%d}.json"
    if out.exists():  # a second run that day keeps the first
        out = out.with_name(f"{now:%Y-%m-%dT%H%M}.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(f"wrote {out} ({record['minutes']:.1f} min)")
    if not args.no_doc:
        from report import update_doc

        update_doc(record, ROOT / "docs" / "benchmarks.md")


if __name__ == "__main__":
    main()
