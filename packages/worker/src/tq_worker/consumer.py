"""The consumer: fetches messages, turns them into jobs, settles them when done.

One thread fetches up to the prefetch limit, checks each message (decodable, accepted
content, known task, not delivered too often, not expired, due) and submits a job to
the pool. A second thread renews the leases of every reserved message while it waits
or runs, so a long task is never handed to another worker. Messages that cannot run
are dead-lettered with one log line each; the consumer itself never stops on them.

Round trips to the broker are the cost of a short task, so the fetching thread works
in batches: it fetches again only once half the prefetch window is free, and
acknowledgements of finished tasks (always after the result was stored) wait in a list
that travels with its next fetch (``Transport.ack_and_fetch``: one round trip on Redis).
While it is blocked in a fetch, or when the worker stops, finishing jobs send their
acknowledgements themselves (``ack_many``), and when a wait for capacity times out it
sends them alone, so an acknowledgement is never held back longer than that wait.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Final, final

from tq import states
from tq.errors import BackendError, MessageError, TaskRevokedError, TransportError
from tq.execution import Outcome, execute
from tq.protocol import parse_message, utcnow
from tq.request import Request
from tq.transport import Delivery
from tq_worker.state import Revoked

if TYPE_CHECKING:
    from tq.task import Task
    from tq_worker.worker import Worker

logger = logging.getLogger("tq.worker")
task_logger = logging.getLogger("tq.worker.task")

_RECONNECT_MAX_DELAY: Final = 5.0
_BACKEND_RETRY_DELAY: Final = 1.0
# An ETA this close is treated as due: not worth a round trip through the broker.
_ETA_SLACK: Final = 0.05


@final
class TaskJob:
    """A reserved message with its decoded request, as the pool runs it."""

    __slots__ = ("acked", "consumer", "delivery", "request", "task")

    def __init__(
        self, consumer: Consumer, delivery: Delivery, request: Request, task: Task[Any, Any]
    ) -> None:
        self.consumer = consumer
        self.delivery = delivery
        self.request = request
        self.task = task
        self.acked = False  # acknowledged as it started (acks_late off)

    def run(self) -> None:
        self.consumer.run_job(self)

    def discard(self) -> None:
        self.consumer.give_back(self.delivery)

    def begin(self) -> None:
        self.consumer.start_job(self)

    def finish(self, outcome: Outcome | None) -> None:
        self.consumer.finish_job(self, outcome)


@final
class Consumer:
    """Fetches from the worker's queues and feeds the pool, within the prefetch limit."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.app = worker.app
        conf = self.app.conf
        self.transport = self.app.transport
        self.queues = list(worker.queues)
        self.prefetch_limit = worker.prefetch_limit
        self.accept = frozenset(conf["accept_content"])
        self.max_deliveries = int(conf["task_max_deliveries"])
        self.fetch_timeout = float(conf["worker_fetch_timeout"])
        self.log_tasks = bool(conf["worker_log_task_events"])
        self.reserved: dict[str, Delivery] = {}
        self.active: dict[str, Request] = {}
        self.total: collections.Counter[str] = collections.Counter()
        self.revoked = Revoked()  # filled by remote control (tq_worker.control)
        self._capacity = threading.Condition()
        self._pending_acks: list[Delivery] = []
        self._fetching = False  # the fetching thread is (about to be) inside a fetch
        self._stopping = threading.Event()
        self._leases_done = threading.Event()
        self._thread: threading.Thread | None = None
        self._lease_thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        for name in self.queues:
            self.transport.declare(self.app.router.queue(name))
        self._thread = threading.Thread(target=self._loop, name="tq-consumer", daemon=True)
        self._thread.start()
        if self.transport.capabilities.leases:
            self._lease_thread = threading.Thread(
                target=self._renew_leases, name="tq-leases", daemon=True
            )
            self._lease_thread.start()

    def stop(self, warm: bool) -> None:
        """Stop fetching, then settle what is reserved.

        Warm: jobs not started go back to the queue, running jobs finish. Cold: running
        jobs' messages go back too, to be run again elsewhere (at-least-once).
        """
        self._stopping.set()
        with self._capacity:
            self._capacity.notify_all()
        if self._thread is not None and warm:
            self._thread.join()
        self.worker.pool.stop(wait=warm)
        self._flush_acks()
        if not warm:
            self.abandon()
        self._leases_done.set()
        if self._lease_thread is not None:
            self._lease_thread.join(timeout=5)

    def abandon(self) -> None:
        """Return every reserved message to its queue now (cold shutdown)."""
        for delivery in list(self.reserved.values()):
            self._settle(delivery, "requeue")

    # -- fetching --------------------------------------------------------------------

    def _loop(self) -> None:
        outage_since: float | None = None
        delay = 0.1
        while not self._stopping.is_set():
            free = self._wait_for_capacity()
            if free <= 0:
                continue
            try:
                deliveries = self._fetch(free)
            except TransportError as exc:
                if outage_since is None:
                    outage_since = time.monotonic()
                    logger.error(
                        "Cannot fetch from the broker: %s. Retrying until it is back.", exc
                    )
                self._stopping.wait(delay)
                delay = min(delay * 2, _RECONNECT_MAX_DELAY)
                continue
            if outage_since is not None:
                logger.warning(
                    "Broker reachable again after %.1fs; consuming.",
                    time.monotonic() - outage_since,
                )
                outage_since, delay = None, 0.1
            for delivery in deliveries:
                self._receive(delivery)

    def _fetch(self, limit: int) -> list[Delivery]:
        # The pending acks travel with the fetch; from here until it returns, finishing
        # jobs send their own.
        with self._capacity:
            self._fetching = True
            acks, self._pending_acks = self._pending_acks, []
        try:
            return self.transport.ack_and_fetch(acks, self.queues, limit, self.fetch_timeout)
        except TransportError:
            self._retry_acks(acks)
            raise
        finally:
            with self._capacity:
                self._fetching = False

    def _wait_for_capacity(self) -> int:
        """How many messages to fetch: 0 until half the prefetch window is free.

        Jobs waiting for their task type's rate limit do not hold back other types.
        """
        with self._capacity:
            wanted = max(1, self.prefetch_limit // 2)
            free = self.prefetch_limit - len(self.reserved) + self.worker.rate_limits.held
            if free >= wanted:
                return free
            notified = self._capacity.wait(self.fetch_timeout)
            free = self.prefetch_limit - len(self.reserved) + self.worker.rate_limits.held
        if not notified:
            self._flush_acks()  # long tasks: no fetch soon, so send the acks on their own
        return free if free >= wanted else 0

    def _receive(self, delivery: Delivery) -> None:
        if self._stopping.is_set():
            self._release(delivery)
            return
        if delivery.delivery_count > self.max_deliveries:
            self._dead_letter(
                delivery,
                f"delivered {delivery.delivery_count} times "
                f"(task_max_deliveries is {self.max_deliveries})",
            )
            return
        try:
            request = parse_message(delivery.message, self.app.codecs, self.accept)
        except MessageError as exc:
            self._dead_letter(delivery, f"{type(exc).__name__}: {exc}")
            return
        task = self.app.tasks.get(request.task)
        if task is None:
            self._dead_letter(
                delivery,
                f"unknown task {request.task!r} (is its module "
                "imported by the worker? see the 'imports' setting)",
            )
            return
        self._prepare(request, delivery)
        if request.id in self.revoked:
            self._discard_revoked(TaskJob(self, delivery, request, task))
            return
        if self.log_tasks:
            task_logger.info("Task %s[%s] received", request.name, request.id)
        if "tq_task_received" in self.app.active_hooks:
            self.app.plugins.hook.tq_task_received(app=self.app, request=request)
        self._dispatch(TaskJob(self, delivery, request, task))

    def _prepare(self, request: Request, delivery: Delivery) -> None:
        request.hostname = self.worker.hostname
        request.delivery_count = delivery.delivery_count
        request.delivery_info = {
            **request.delivery_info,
            "queue": delivery.queue,
            "redelivered": delivery.redelivered,
        }

    def _dispatch(self, job: TaskJob) -> None:
        request = job.request
        if request.expires is not None and request.expires < utcnow():
            self._revoke_expired(job)
            return
        if request.eta is not None:
            wait = (request.eta - utcnow()).total_seconds()
            if wait > _ETA_SLACK:
                self._defer(job, wait)
                return
        self._reserve(job.delivery)
        self.worker.rate_limits.submit(job)

    def _defer(self, job: TaskJob, wait: float) -> None:
        # Brokers with delayed delivery keep the message until it is due; others
        # (none built in yet) make the worker hold it.
        if self.transport.capabilities.delayed_delivery:
            eta = job.request.eta
            self._settle(
                job.delivery, "requeue", not_before=eta.timestamp() if eta is not None else None
            )
            return
        self._reserve(job.delivery)
        timer = threading.Timer(wait, self._run_deferred, (job,))
        timer.daemon = True
        timer.start()

    def _run_deferred(self, job: TaskJob) -> None:
        job.request.eta = None
        self.reserved.pop(job.delivery.tag, None)
        self._dispatch(job)

    def _reserve(self, delivery: Delivery) -> None:
        with self._capacity:
            self.reserved[delivery.tag] = delivery

    # -- running ---------------------------------------------------------------------

    def run_job(self, job: TaskJob) -> None:
        """Execute a job in the calling pool thread and settle its message. Never raises."""
        request, delivery = job.request, job.delivery
        if self._stopping.is_set():  # warm shutdown began while it waited for a slot
            self.give_back(delivery)
            return
        if request.id in self.revoked:  # revoked while it waited for a free slot
            self._discard_revoked(job)
            return
        self.start_job(job)
        try:
            outcome = execute(job.task, request)
        except BackendError as exc:
            logger.error(
                "Task %s[%s]: the result could not be stored (%s); the message goes "
                "back to the queue to run again.",
                request.name,
                request.id,
                exc,
            )
            self._settle_job(job, "requeue", not_before=time.time() + _BACKEND_RETRY_DELAY)
            return
        except BaseException:
            logger.exception(
                "Task %s[%s]: internal error; the message goes back to the queue.",
                request.name,
                request.id,
            )
            self._settle_job(job, "requeue", not_before=time.time() + _BACKEND_RETRY_DELAY)
            return
        finally:
            self.active.pop(delivery.tag, None)
            self.total[request.task] += 1
        self._log_outcome(request, outcome)
        self._settle_outcome(job, outcome)

    def start_job(self, job: TaskJob) -> None:
        """Mark ``job`` running; without ``acks_late`` its message is acknowledged now.

        Acknowledging at the start rather than on receipt means a job still waiting for
        a slot goes back to the queue at shutdown instead of being lost (Celery's rule).
        """
        self.active[job.delivery.tag] = job.request
        if not job.acked and not job.task.option("acks_late"):
            self._settle(job.delivery, "ack", keep_reserved=True)
            job.acked = True

    def finish_job(self, job: TaskJob, outcome: Outcome | None) -> None:
        """Settle a job that ran elsewhere (a pool's child process). Never raises.

        ``outcome`` is ``None`` when the result could not be stored: the message goes
        back to the queue, as in :meth:`run_job`.
        """
        self.active.pop(job.delivery.tag, None)
        self.total[job.request.task] += 1
        if outcome is None:
            self._settle_job(job, "requeue", not_before=time.time() + _BACKEND_RETRY_DELAY)
            return
        self._log_outcome(job.request, outcome)
        self._settle_outcome(job, outcome)

    def _settle_outcome(self, job: TaskJob, outcome: Outcome) -> None:
        delivery = job.delivery
        if job.acked:
            self._unreserve(delivery)
            return
        if outcome.state == states.REJECTED:
            if outcome.requeue:
                self._settle(delivery, "requeue")
            else:
                self._dead_letter(delivery, f"rejected by the task: {outcome.value}")
            return
        if (
            outcome.failed
            and job.task.option("acks_late")
            and not job.task.option("acks_on_failure_or_timeout")
        ):
            self._dead_letter(delivery, f"task failed: {outcome.value!r}")
            return
        self._settle(delivery, "ack")

    def _settle_job(self, job: TaskJob, how: str, not_before: float | None = None) -> None:
        if job.acked:
            self._unreserve(job.delivery)
        else:
            self._settle(job.delivery, how, not_before=not_before)

    def _log_outcome(self, request: Request, outcome: Outcome) -> None:
        if outcome.state == states.SUCCESS:
            if self.log_tasks:
                task_logger.info(
                    "Task %s[%s] succeeded in %.6fs: %r",
                    request.name,
                    request.id,
                    outcome.runtime,
                    outcome.value,
                )
        elif outcome.state == states.FAILURE:
            task_logger.error(
                "Task %s[%s] raised unexpected: %r\n%s",
                request.name,
                request.id,
                outcome.value,
                outcome.traceback or "",
            )
        elif outcome.state == states.RETRY:
            task_logger.info("Task %s[%s] retry: %s", request.name, request.id, outcome.value)
        elif self.log_tasks:
            task_logger.info("Task %s[%s] %s", request.name, request.id, outcome.state.lower())

    def _revoke_expired(self, job: TaskJob) -> None:
        logger.warning(
            "Discarding expired task %s[%s] (expired at %s)",
            job.request.name,
            job.request.id,
            job.request.expires,
        )
        self._revoke(job, expired=True)

    def _discard_revoked(self, job: TaskJob) -> None:
        task_logger.info("Discarding revoked task %s[%s]", job.request.name, job.request.id)
        self._revoke(job, expired=False)

    def _revoke(self, job: TaskJob, *, expired: bool) -> None:
        """Store REVOKED for a task that will not run, and settle its message."""
        request = job.request
        if self.app.results.enabled and not request.ignore_result:
            reason = TaskRevokedError("expired" if expired else "revoked")
            try:
                self.app.results.store(request.id or "", states.REVOKED, reason, request=request)
            except BackendError as exc:
                logger.error("Cannot store REVOKED for %s: %s", request.id, exc)
                self._settle_job(job, "requeue", not_before=time.time() + _BACKEND_RETRY_DELAY)
                return
        self.app.plugins.hook.tq_task_revoked(
            app=self.app, request=request, expired=expired, terminated=False
        )
        self._settle_job(job, "ack")

    # -- settling --------------------------------------------------------------------

    def give_back(self, delivery: Delivery) -> None:
        """Return a message that was reserved but never started."""
        self._release(delivery)

    def _release(self, delivery: Delivery) -> None:
        self._settle(delivery, "release")

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        dead = self.app.dead_letter_queue(delivery.queue)
        logger.error(
            "Message %s from queue %r moved to %r: %s",
            delivery.message.headers.get("id") or delivery.tag,
            delivery.queue,
            dead.name,
            reason,
        )
        try:
            self.transport.dead_letter(delivery, dead, reason)
        except TransportError as exc:
            logger.error("Could not dead-letter message %s: %s", delivery.tag, exc)
        finally:
            self._unreserve(delivery)
        self.app.plugins.hook.tq_message_rejected(
            app=self.app, message=delivery.message, queue=delivery.queue, reason=reason
        )

    def _ack_after_run(self, delivery: Delivery) -> None:
        """Queue the acknowledgement of a finished job for the next batch."""
        with self._capacity:
            self.reserved.pop(delivery.tag, None)
            self._pending_acks.append(delivery)
            now = self._fetching or self._stopping.is_set()
            self._capacity.notify()
        if now:
            self._flush_acks()

    def _flush_acks(self) -> None:
        with self._capacity:
            batch, self._pending_acks = self._pending_acks, []
        if not batch:
            return
        try:
            self.transport.ack_many(batch)
        except TransportError as exc:
            logger.error("Could not acknowledge %d messages: %s", len(batch), exc)
            self._retry_acks(batch)

    def _retry_acks(self, acks: list[Delivery]) -> None:
        # Tried again with the next batch: acknowledging a lease that expired meanwhile
        # does nothing, and until then the broker still holds every message.
        if acks:
            with self._capacity:
                self._pending_acks[:0] = acks

    def _settle(
        self,
        delivery: Delivery,
        how: str,
        *,
        not_before: float | None = None,
        keep_reserved: bool = False,
    ) -> None:
        if how == "ack" and not keep_reserved:
            self._ack_after_run(delivery)
            return
        try:
            if how == "ack":
                self.transport.ack(delivery)
            elif how == "release":
                self.transport.release(delivery)
            else:
                self.transport.requeue(delivery, not_before)
        except TransportError as exc:
            # The lease will expire and the broker will deliver the message again.
            logger.error("Could not %s message %s: %s", how, delivery.tag, exc)
        finally:
            if not keep_reserved:
                self._unreserve(delivery)

    def _unreserve(self, delivery: Delivery) -> None:
        with self._capacity:
            self.reserved.pop(delivery.tag, None)
            self._capacity.notify()

    # -- leases ----------------------------------------------------------------------

    def _renew_leases(self) -> None:
        interval = self.worker.lease_renewal_interval
        seconds = self.transport.visibility_timeout
        while not self._leases_done.wait(interval):
            deliveries = list(self.reserved.values())
            if not deliveries:
                continue
            try:
                self.transport.extend(deliveries, seconds)
            except TransportError as exc:
                logger.warning("Could not renew %d leases: %s", len(deliveries), exc)
