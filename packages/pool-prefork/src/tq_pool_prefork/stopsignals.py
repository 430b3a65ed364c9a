"""SIGINT and SIGTERM in prefork children: ignored unless the worker itself sent them.

Ctrl-C in a terminal sends SIGINT to the whole foreground process group, and
``kill -TERM -PGID`` or a supervisor that signals every process of a service (systemd's
default ``KillMode=control-group``) send SIGTERM to the worker and its children at once.
The worker, not its children, decides when a running task may end: its warm shutdown
waits for the task. So children ignore both signals, except when the worker stops one of
them on purpose (``revoke --terminate``, whose default signal is SIGTERM).

The worker tells them apart through :class:`StopRequests`, a few pids in memory shared
with every child (mapped before the fork server is forked, so every fork inherits the
same pages): it writes the child's pid there, then sends the signal; the child's handler
finds its own pid and dies from the signal. A task running one long C call that does
not return on a signal sees it only when the call returns; a plain kill (SIGKILL) does
not wait.
"""

from __future__ import annotations

import mmap
import os
import signal
import struct
from types import FrameType
from typing import Final, final

_PID: Final = struct.Struct("=i")
# Stop requests in flight at once (a ring: the oldest is overwritten first).
_SLOTS: Final = 64


@final
class StopRequests:
    """Pids of children the worker asked to stop, in memory shared with them."""

    __slots__ = ("_memory", "_next")

    def __init__(self) -> None:
        # An anonymous mapping is MAP_SHARED: forked processes see each other's writes.
        self._memory = mmap.mmap(-1, _SLOTS * _PID.size)
        self._next = 0

    def add(self, pid: int) -> None:
        """Mark ``pid`` as asked to stop (in the worker, before it signals the child)."""
        _PID.pack_into(self._memory, (self._next % _SLOTS) * _PID.size, pid)
        self._next += 1

    def discard(self, pid: int) -> None:
        """Forget ``pid`` once its child exited, so a later process with that pid is safe."""
        for offset in self._offsets():
            if _PID.unpack_from(self._memory, offset)[0] == pid:
                _PID.pack_into(self._memory, offset, 0)

    def __contains__(self, pid: object) -> bool:
        return any(_PID.unpack_from(self._memory, offset)[0] == pid for offset in self._offsets())

    def _offsets(self) -> range:
        return range(0, _SLOTS * _PID.size, _PID.size)


def ignore_unless_requested(requests: StopRequests) -> None:
    """In a child: SIGINT and SIGTERM stop it only when the worker asked for it."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if os.getpid() not in requests:
            return  # a whole process group or control group was signalled: not for us
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
