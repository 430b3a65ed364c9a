"""Where messages live in Redis: kombu's key layout, and tq's own bookkeeping keys.

Queues are kombu's: one Redis list per queue and priority step, named ``<queue>`` for
step 0 and ``<queue>\\x06\\x16<step>`` for the others; producers ``LPUSH``, consumers
take from the right, lower steps first. Exchange bindings are kombu's
``_kombu.binding.<exchange>`` sets and fanout is pub/sub on ``/<db>.<exchange>``.

kombu's Redis serves *lower* priority numbers first; tq's priority (0-9, higher first,
docs/decisions.md section 7) is stored as kombu priority ``9 - priority``, so a message
means the same to a Celery worker reading the same list.

tq's own keys hold what kombu has no place for: leases (``_tq.leases``, a hash of lease
tag to the leased message, and ``_tq.lease_deadlines``, a sorted set of lease tags by
deadline), delivery counts of redelivered messages waiting in a list (``_tq.deliveries``,
keyed by the SHA-1 of the stored message) and delayed messages (``_tq.delayed.<queue>``,
a sorted set by due time). Idle workers listen on ``_tq.wake/<db>.<queue>``, where a tq
publisher announces a message that found its list empty. Celery's ``unacked`` keys are left to Celery, so a Celery
worker on the same Redis never restores a message a tq worker holds, and the reverse.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, final

PRIORITY_SEPARATOR: Final = "\x06\x16"
BINDING_SEPARATOR: Final = "\x06\x16"
MAX_PRIORITY: Final = 9
# kombu's default steps: what a Celery worker on the same Redis reads.
KOMBU_PRIORITY_STEPS: Final = (0, 3, 6, 9)
# Without Celery in the cluster every tq priority gets its own list.
EXACT_PRIORITY_STEPS: Final = tuple(range(MAX_PRIORITY + 1))


def kombu_priority(priority: int) -> int:
    """tq's priority (higher first) as kombu's Redis priority (lower first)."""
    return MAX_PRIORITY - min(max(priority, 0), MAX_PRIORITY)


tq_priority = kombu_priority  # the mapping is its own inverse


@final
@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Names of every key the transport uses, with ``global_keyprefix`` applied."""

    prefix: str
    steps: Sequence[int]
    db: int

    @property
    def leases(self) -> str:
        return f"{self.prefix}_tq.leases"

    @property
    def lease_deadlines(self) -> str:
        return f"{self.prefix}_tq.lease_deadlines"

    @property
    def deliveries(self) -> str:
        return f"{self.prefix}_tq.deliveries"

    @property
    def lease_sequence(self) -> str:
        return f"{self.prefix}_tq.lease_sequence"

    def delayed(self, queue: str) -> str:
        return f"{self.prefix}_tq.delayed.{queue}"

    def buckets(self, queue: str) -> list[str]:
        """The lists of ``queue``, in the order they are served."""
        return [self._bucket_name(queue, step) for step in self.steps]

    def bucket(self, queue: str, stored_priority: int) -> str:
        """The list holding messages of kombu priority ``stored_priority``."""
        index = max(bisect.bisect_right(self.steps, stored_priority) - 1, 0)
        return self._bucket_name(queue, self.steps[index])

    def _bucket_name(self, queue: str, step: int) -> str:
        name = queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}"
        return self.prefix + name

    def wake_channel(self, queue: str) -> str:
        """Where publishers announce that ``queue`` was empty and has a message now."""
        return f"{self.prefix}_tq.wake/{self.db}.{queue}"

    def binding(self, exchange: str) -> str:
        return f"{self.prefix}_kombu.binding.{exchange}"

    @staticmethod
    def binding_member(routing_key: str, queue: str) -> str:
        return BINDING_SEPARATOR.join((routing_key, "", queue))

    def fanout_channel(self, exchange: str, routing_key: str = "") -> str:
        """kombu's pub/sub channel for a fanout exchange (with ``fanout_prefix``)."""
        channel = f"/{self.db}.{exchange}"
        return self.prefix + (f"{channel}/{routing_key}" if routing_key else channel)

    def fanout_patterns(self, exchange: str) -> list[str]:
        """Patterns matching everything published on ``exchange``, with or without a key."""
        channel = self.fanout_channel(exchange)
        return [channel, f"{channel}/*"]
