"""The worker: builds its bootsteps from plugins, starts them, and shuts down in order.

Shutdown order (warm): stop fetching → hand back messages not started → let running
tasks finish, their leases renewed → stop the pool → close broker and backend. A second
signal (or SIGQUIT) makes it cold: messages of running tasks go back to the queue at
once and the process exits. SIGHUP is a warm shutdown after which the caller (``tq
worker``) re-executes the process, when it asked :meth:`Worker.run` for restarts.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any, Final

from tq.app import App
from tq.errors import ImproperlyConfigured
from tq_worker import bootsteps
from tq_worker.autoscale import AutoscaleRules
from tq_worker.consumer import Consumer
from tq_worker.daemon import dump_stacks
from tq_worker.pools.base import Pool, PoolOptions
from tq_worker.ratelimit import RateLimits

logger = logging.getLogger("tq.worker")

DEFAULT_NODENAME: Final = "tq@%h"


def expand_nodename(template: str) -> str:
    """Expand ``%h`` (host), ``%n`` (name part) and ``%d`` (domain) in a node name."""
    host = socket.gethostname()
    name, _, _domain = template.partition("@")
    expanded = template.replace("%h", host).replace("%d", host.partition(".")[2])
    expanded = expanded.replace("%n", name if "%n" not in name else host.partition(".")[0])
    return expanded if "@" in expanded else f"{expanded}@{host}"


class Worker:
    """A worker process's state: pool, consumer and bootsteps.

    Explicit arguments win over the app's ``worker_*`` settings.
    """

    def __init__(
        self,
        app: App,
        *,
        concurrency: int | None = None,
        pool: str | None = None,
        queues: Sequence[str] | None = None,
        hostname: str | None = None,
        prefetch_multiplier: int | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        autoscale: tuple[int, int] | None = None,
    ) -> None:
        self.app = app
        conf = app.conf
        self.hostname = expand_nodename(hostname or conf["worker_hostname"] or DEFAULT_NODENAME)
        self.pool_name = pool or conf["worker_pool"]
        self._pool_component = app.plugins.get("pool", self.pool_name)
        self.concurrency = int(
            concurrency
            or conf["worker_concurrency"]
            or self._pool_component.meta.get("default_concurrency")
            or os.cpu_count()
            or 1
        )
        if self.pool_name == "solo":
            self.concurrency = 1
        self.autoscaler = self._make_autoscaler(autoscale)
        if self.autoscaler is not None:
            # Prefetch for the most the pool may grow to; the pool starts at the least.
            self.concurrency = self.autoscaler.max_concurrency
        self.queues = list(queues or [app.default_queue.name])
        multiplier = (
            conf["worker_prefetch_multiplier"]
            if prefetch_multiplier is None
            else prefetch_multiplier
        )
        self.prefetch_limit = max(self.concurrency * int(multiplier), self.concurrency)
        renewal = conf["worker_lease_renewal"]
        self.lease_renewal_interval = float(renewal or app.transport.visibility_timeout / 3)
        self.consumer = Consumer(self)
        self.pool_options = PoolOptions(
            time_limit=time_limit or conf["task_time_limit"],
            soft_time_limit=soft_time_limit or conf["task_soft_time_limit"],
            max_tasks_per_child=max_tasks_per_child or conf["worker_max_tasks_per_child"],
            max_memory_per_child=max_memory_per_child or conf["worker_max_memory_per_child"],
            revoked=self.consumer.revoked,
        )
        self.pool: Pool = self._make_pool()
        self.rate_limits = RateLimits(self, self.pool.submit)
        self.steps: list[bootsteps.Bootstep] = [
            component.load()(self)
            for component in bootsteps.order(app.plugins.components("bootstep"))
        ]
        self._started: list[bootsteps.Bootstep] = []
        self._shutdown = threading.Event()
        self._warm = True
        self._restart = False
        self._stopped = False

    def _make_pool(self) -> Pool:
        factory = self._pool_component.load()
        size = self.concurrency if self.autoscaler is None else self.autoscaler.min_concurrency
        pool: Pool = factory(self.app, size, self.pool_options)
        return pool

    def _make_autoscaler(self, bounds: tuple[int, int] | None) -> AutoscaleRules | None:
        if bounds is None:
            return None
        conf = self.app.conf
        factory = self.app.plugins.get("autoscaler", conf["worker_autoscaler"]).load()
        rules: AutoscaleRules = factory(*bounds, float(conf["worker_autoscale_keepalive"]))
        return rules

    # -- running -------------------------------------------------------------------

    def start(self) -> None:
        """Start every bootstep; returns once the worker consumes."""
        hooks = self.app.plugins.hook
        hooks.tq_worker_init(worker=self)
        for step in self.steps:
            step.start()
            self._started.append(step)
        logger.info("%s ready.", self.hostname)
        hooks.tq_worker_ready(worker=self)

    def stop(self, warm: bool = True) -> None:
        """Stop the bootsteps in reverse order, then close connections."""
        if self._stopped:
            return
        self._stopped = True
        hooks = self.app.plugins.hook
        how = "warm" if warm else "cold"
        hooks.tq_worker_shutting_down(worker=self, how=how)
        for step in reversed(self._started):
            try:
                step.stop(warm)
            except Exception:
                logger.exception("Bootstep %s failed to stop", type(step).__name__)
        self.app.close()
        hooks.tq_worker_shutdown(worker=self)

    def run(self, restart_on_sighup: bool = False) -> bool:
        """Start, serve until a signal asks to stop, and shut down (the CLI's main loop).

        Args:
            restart_on_sighup: SIGHUP asks for a restart (see :meth:`request_restart`);
                otherwise it is a warm shutdown, as SIGTERM.

        Returns:
            Whether SIGHUP asked for a restart: the worker stopped (warm), and the caller
            starts it again, ``tq worker`` by re-executing its process.
        """
        self._install_signal_handlers(restart_on_sighup)
        self.start()
        while not self._shutdown.wait(0.5):
            pass
        logger.warning(
            "worker: Warm shutdown (%s): waiting for %d running task(s)",
            self.hostname,
            len(self.consumer.active),
        )
        self.stop(warm=True)
        return self._restart

    def request_shutdown(self, warm: bool = True) -> None:
        """Ask :meth:`run` to stop; a cold request exits the process at once."""
        if not warm or not self._warm:
            self._cold_exit()
        self._warm = False  # a second request is cold
        self._shutdown.set()

    @property
    def stopping(self) -> bool:
        """Whether a shutdown (or restart) was asked for."""
        return self._shutdown.is_set()

    def request_restart(self) -> None:
        """Ask :meth:`run` to stop warm and report that a restart was asked for.

        Ignored while the worker already stops: a restart never turns a shutdown cold.
        """
        if self._shutdown.is_set():
            logger.warning("worker: SIGHUP ignored: the worker is already stopping")
            return
        logger.warning("Restarting worker (SIGHUP)")
        self._restart = True
        self.request_shutdown(warm=True)

    def _cold_exit(self) -> None:
        logger.warning(
            "worker: Cold shutdown (%s): returning %d message(s) to the queue",
            self.hostname,
            len(self.consumer.reserved),
        )
        try:
            self.pool.stop(wait=False)  # child processes must not outlive the worker
            self.consumer.abandon()
            self.app.plugins.hook.tq_worker_shutdown(worker=self)
        finally:
            logging.shutdown()
            os._exit(0)

    def _install_signal_handlers(self, restart_on_sighup: bool) -> None:
        def warm(signum: int, frame: FrameType | None) -> None:
            self.request_shutdown(warm=True)

        def cold(signum: int, frame: FrameType | None) -> None:
            self.request_shutdown(warm=False)

        def restart(signum: int, frame: FrameType | None) -> None:
            self.request_restart()

        signal.signal(signal.SIGTERM, warm)
        signal.signal(signal.SIGINT, warm)
        if hasattr(signal, "SIGQUIT"):
            signal.signal(signal.SIGQUIT, cold)
        if hasattr(signal, "SIGUSR1"):
            signal.signal(signal.SIGUSR1, dump_stacks)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, restart if restart_on_sighup else warm)

    # -- reporting -----------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What the worker is and does, for banners and ``inspect stats``."""
        return {
            "hostname": self.hostname,
            "pid": os.getpid(),
            "pool": self.pool.info(),
            "autoscaler": (
                {"max": self.autoscaler.max_concurrency, "min": self.autoscaler.min_concurrency}
                if self.autoscaler is not None
                else None
            ),
            "prefetch_count": self.prefetch_limit,
            "queues": self.queues,
            "total": dict(self.consumer.total),
        }


def check_queues(app: App, queues: Sequence[str]) -> list[str]:
    """Validate ``-Q`` names against ``task_queues`` when missing queues are not created."""
    for name in queues:
        try:
            app.router.queue(name)
        except ImproperlyConfigured as exc:
            raise ImproperlyConfigured(f"-Q {name}: {exc}") from None
    return list(queues)
