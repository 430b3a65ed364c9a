"""The interface every transport plugin implements.

A transport is queue storage with at-least-once semantics. The interface is narrow on
purpose (the model is kombu's virtual transport): publish, fetch a batch, settle each
delivery (ack, release, requeue, dead-letter), renew leases, purge and size. Routing,
encoding, retries and the worker's bookkeeping are written once, above it, in the core.

Every method must be safe to call from several threads at once: a worker fetches in one
thread and settles deliveries from its pool's threads.

Semantics every implementation keeps (checked by ``tq_testing``'s contract suite):

* A fetched message is *leased* to its consumer until it is settled. A lease that is
  not renewed with :meth:`Transport.extend` for ``visibility_timeout`` seconds expires
  and the message becomes visible again, with its delivery count raised.
* ``not_before`` (a Unix timestamp) keeps a message invisible until then; transports
  with ``capabilities.delayed_delivery`` store it in the broker, so scheduled tasks never
  wait in worker memory.
* Higher ``Message.priority`` is served first (0 to 9, the AMQP meaning); messages of
  equal priority are served in publish order.
* Fanout (``capabilities.fanout``): :meth:`Transport.broadcast` hands a message to every
  :class:`Subscription` open on that exchange at the time, at most once each and with
  no acknowledgement. Remote control and events use it; tasks never do.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, final

from tq.message import Message

DEAD_LETTER_REASON_HEADER = "x-tq-dead-letter-reason"
ORIGINAL_QUEUE_HEADER = "x-tq-original-queue"
DEFAULT_VISIBILITY_TIMEOUT = 120.0


@final
@dataclass(frozen=True, slots=True)
class Queue:
    """A queue a task can be routed to.

    ``exchange`` and ``routing_key`` matter only to transports that route through
    exchanges (AMQP); the others deliver to the queue by ``name``.
    """

    name: str
    exchange: str = ""
    routing_key: str = ""
    exchange_type: str = "direct"
    max_priority: int | None = None
    durable: bool = True

    def __post_init__(self) -> None:
        if not self.routing_key:
            object.__setattr__(self, "routing_key", self.name)


@final
@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a transport can do, declared as data so the core can plan around it."""

    delayed_delivery: bool = False
    priorities: bool = False
    leases: bool = True
    fanout: bool = False
    shared_between_processes: bool = True
    persistent: bool = True


@dataclass(slots=True)
class Delivery:
    """A message fetched from a queue, leased to this consumer until settled.

    ``tag`` is the transport's handle for the lease; ``delivery_count`` is 1 on the
    first delivery and grows each time an expired lease or a requeue hands it out again.
    """

    message: Message
    queue: str
    tag: str
    delivery_count: int = 1
    received_at: float = field(default_factory=time.monotonic)

    @property
    def redelivered(self) -> bool:
        return self.delivery_count > 1


class Subscription(ABC):
    """A subscriber's view of one fanout exchange: every message broadcast after it opened."""

    @abstractmethod
    def get(self, timeout: float) -> list[Message]:
        """Messages broadcast since the last call, waiting up to ``timeout`` for the first."""

    @abstractmethod
    def close(self) -> None:
        """Stop receiving; messages broadcast afterwards are not kept for this subscriber."""


class Transport(ABC):
    """Base class of transport plugins.

    Args:
        url: the broker URL this transport was chosen for (its scheme picked it).
        options: ``broker_transport_options``; ``visibility_timeout`` (seconds) is
            understood by every transport with leases.
    """

    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.options: Mapping[str, Any] = dict(options or {})
        self.visibility_timeout = float(
            self.options.get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT)
        )

    # -- producing ---------------------------------------------------------------

    @abstractmethod
    def publish(self, message: Message, queue: Queue, not_before: float | None = None) -> None:
        """Store ``message`` on ``queue``; invisible until ``not_before`` if given."""

    def publish_many(self, items: Sequence[tuple[Message, Queue, float | None]]) -> None:
        """Store many messages; transports override this to use one round trip."""
        for message, queue, not_before in items:
            self.publish(message, queue, not_before)

    # -- consuming ---------------------------------------------------------------

    @abstractmethod
    def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        """Lease up to ``limit`` visible messages from ``queues``.

        Waits up to ``timeout`` seconds for the first one and returns an empty list
        when none arrived. Messages come highest priority first, then oldest first;
        with several queues, earlier queues in the list are served first.
        """

    def ack_and_fetch(
        self, acks: Sequence[Delivery], queues: Sequence[str], limit: int, timeout: float
    ) -> list[Delivery]:
        """Acknowledge ``acks``, then :meth:`fetch`; transports override this to do both in
        one round trip. If it raises, the acknowledgements may not have happened."""
        if acks:
            self.ack_many(acks)
        return self.fetch(queues, limit, timeout)

    @abstractmethod
    def ack(self, delivery: Delivery) -> None:
        """Settle a delivery as done: the message is removed for good."""

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Settle several deliveries as done; transports override this to use one round trip.

        The worker acknowledges finished tasks in batches through this, so it is on the
        hot path of every transport with a network between worker and broker.
        """
        for delivery in deliveries:
            self.ack(delivery)

    @abstractmethod
    def requeue(self, delivery: Delivery, not_before: float | None = None) -> None:
        """Make the message visible again (after ``not_before``), counting this delivery."""

    @abstractmethod
    def release(self, delivery: Delivery) -> None:
        """Give back a delivery that was never started; it does not count as delivered."""

    def dead_letter(self, delivery: Delivery, queue: Queue, reason: str) -> None:
        """Move a delivery to the dead-letter ``queue`` with ``reason`` in its headers.

        Transports override this to make the move atomic; this default publishes the
        copy first, so a crash in between duplicates rather than loses the message.
        """
        message = delivery.message
        headers = dict(message.headers)
        headers[DEAD_LETTER_REASON_HEADER] = reason
        headers.setdefault(ORIGINAL_QUEUE_HEADER, delivery.queue)
        copy = Message(
            message.body,
            message.content_type,
            message.content_encoding,
            headers,
            dict(message.properties),
        )
        self.publish(copy, queue)
        self.ack(delivery)

    def extend(self, deliveries: Sequence[Delivery], seconds: float) -> None:  # noqa: B027
        """Renew the leases of running deliveries for ``seconds`` from now.

        Transports without leases (``capabilities.leases`` false) need not override it.
        """

    # -- fanout ------------------------------------------------------------------

    def broadcast(self, exchange: str, message: Message) -> None:
        """Send ``message`` to every open subscription on ``exchange``."""
        raise NotImplementedError(f"{type(self).__name__} has no fanout exchanges")

    def subscribe(self, exchange: str) -> Subscription:
        """Start receiving what is broadcast on ``exchange`` from now on."""
        raise NotImplementedError(f"{type(self).__name__} has no fanout exchanges")

    # -- management --------------------------------------------------------------

    def declare(self, queue: Queue) -> None:  # noqa: B027 - optional for queue-less stores
        """Make sure ``queue`` exists; stores that create queues on first use skip this."""

    @abstractmethod
    def purge(self, queue: str) -> int:
        """Delete every waiting message (delayed ones included); return how many."""

    @abstractmethod
    def size(self, queue: str) -> int:
        """How many messages wait on ``queue``, visible or delayed, not counting leased ones."""

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release connections and files; the transport is not used afterwards."""
