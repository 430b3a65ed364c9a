"""The start-up banner: what this worker is, where it connects, what it runs."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

import tq
from tq.settings import censor_url

if TYPE_CHECKING:
    from tq_worker.worker import Worker


def banner(worker: Worker, processes: int = 1) -> str:
    """A few lines a person reads to check the worker is the one they meant to start.

    ``processes`` > 1: the first of that many worker processes (``--processes``).
    """
    app = worker.app
    results = app.result_backend_url
    plugins = ", ".join(info.name for info in app.plugins.info())
    lines = [
        f"tq {tq.__version__} · {worker.hostname} · Python {platform.python_version()} · "
        f"{platform.system()}",
        "",
        "[config]",
        f"  app:          {app.main or '__main__'}",
        f"  transport:    {censor_url(app.broker_url)}",
        f"  results:      {censor_url(results) if results else 'disabled'}",
        f"  concurrency:  {worker.concurrency} ({worker.pool_name})"
        + (f" in each of {processes} processes" if processes > 1 else ""),
        f"  prefetch:     {worker.prefetch_limit}",
        f"  plugins:      {plugins}",
        "",
        "[queues]",
        *(f"  {name}" for name in worker.queues),
        "",
        "[tasks]",
        *(f"  {name}" for name in sorted(app.tasks)),
        "",
    ]
    return "\n".join(lines)
