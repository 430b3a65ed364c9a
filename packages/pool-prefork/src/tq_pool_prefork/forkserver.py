"""The fork server: forked once while the worker is single-threaded; forks every child.

Forking a process that runs threads copies the locks those threads held at that
instant, held forever: a child forked while the consumer thread was inside SQLite (or
malloc, or logging) deadlocks on its first call there. The worker starts threads for
fetching, lease renewal, events and remote control, so the prefork pool never forks
from the worker once those run. At pool start, before any of them, it forks this
server; the server stays single-threaded and forks each child, the first ones and every
replacement, from that clean state. Children still inherit the app by fork.

Protocol over a ``SOCK_SEQPACKET`` socket pair, one fixed-size message per datagram:

- worker → server: ``S index number`` with the child's end of its pipe attached
  (``SCM_RIGHTS``): fork a child, the pool's ``index``-th (1 to its size), the
  ``number``-th started (its process name); the server answers ``P pid``.
- server → worker: ``X pid exitcode`` when a child exited (negative: killed by that
  signal, as :attr:`multiprocessing.Process.exitcode`).

When the worker's end closes (it stopped, or died), the server exits; children left
behind notice their parent changed and exit once idle.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Final, final

logger = logging.getLogger("tq.worker.pool")

#: What a child runs: its pipe to the worker, the pid of its parent (the server), and
#: its index in the pool.
ChildTarget = Callable[[Connection, int, int], None]

_MESSAGE: Final = struct.Struct("!cii")
# How often the server reaps children when no request arrives.
_REAP_INTERVAL: Final = 0.05


@final
class ForkServer:
    """The worker's handle on the fork server process."""

    __slots__ = ("_exits", "_sock", "pid")

    def __init__(self) -> None:
        self.pid = 0
        self._sock: socket.socket | None = None
        self._exits: list[tuple[int, int]] = []

    def start(self, target: ChildTarget) -> None:
        """Fork the server; every child it forks later runs ``target``."""
        others = threading.active_count() - 1
        if others:
            # A programmatic Worker started after other threads: warn, since the server
            # inherits whatever locks they hold now (the CLI forks before any thread).
            logger.warning("prefork: forking the fork server while %d other threads run", others)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            ours.close()
            _server_main(theirs, target)
        theirs.close()
        self.pid, self._sock = pid, ours

    def fileno(self) -> int:
        """The worker's end of the socket: readable when a child exited."""
        return self._socket.fileno()

    def spawn(self, conn: Connection, index: int, number: int) -> int:
        """Fork child ``number``, ``index`` in the pool, talking over ``conn``; return its pid."""
        socket.send_fds(self._socket, [_MESSAGE.pack(b"S", index, number)], [conn.fileno()])
        while True:
            kind, pid, code = self._receive(block=True)
            if kind == b"P":
                return pid
            self._exits.append((pid, code))

    def exits(self) -> list[tuple[int, int]]:
        """Children that exited since the last call: ``(pid, exitcode)`` pairs."""
        while True:
            try:
                kind, pid, code = self._receive(block=False)
            except BlockingIOError:
                break
            if kind == b"X":
                self._exits.append((pid, code))
        exits, self._exits = self._exits, []
        return exits

    def close(self) -> None:
        """Make the server exit, and wait for it."""
        if self._sock is None:
            return
        self._sock.close()
        self._sock = None
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    @property
    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise RuntimeError("the fork server is not running")
        return self._sock

    def _receive(self, block: bool) -> tuple[bytes, int, int]:
        data = self._socket.recv(_MESSAGE.size, 0 if block else socket.MSG_DONTWAIT)
        if not data:
            raise ConnectionError("the prefork fork server exited")
        kind, pid, code = _MESSAGE.unpack(data)
        return kind, pid, code


# -- the server process -------------------------------------------------------------


def _server_main(sock: socket.socket, target: ChildTarget) -> None:
    code = 0
    try:
        multiprocessing.current_process().name = "ForkServer"
        _reset_signals()
        _serve(sock, target)
    except BaseException:
        logger.exception("prefork: the fork server failed")
        code = 1
    finally:
        os._exit(code)


def _serve(sock: socket.socket, target: ChildTarget) -> None:
    while True:
        readable, _, _ = select.select([sock], [], [], _REAP_INTERVAL)
        if readable:
            message, fds, _, _ = socket.recv_fds(sock, _MESSAGE.size, 1)
            if not message:
                return  # the worker closed its end (stopped, or died)
            _, index, number = _MESSAGE.unpack(message)
            pid = _fork_child(sock, fds[0], index, number, target)
            sock.send(_MESSAGE.pack(b"P", pid, 0))
        _reap(sock)


def _fork_child(sock: socket.socket, fd: int, index: int, number: int, target: ChildTarget) -> int:
    pid = os.fork()
    if pid == 0:
        sock.close()
        _child_main(fd, index, number, target)
    os.close(fd)
    return pid


def _child_main(fd: int, index: int, number: int, target: ChildTarget) -> None:
    code = 0
    try:
        multiprocessing.current_process().name = f"ForkPoolWorker-{number}"
        target(Connection(fd), os.getppid(), index)
    except BaseException:
        logger.exception("prefork: child failed")
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        sock.send(_MESSAGE.pack(b"X", pid, os.waitstatus_to_exitcode(status)))


def _reset_signals() -> None:
    # Inherited from the worker: the server must not run the worker's shutdown handlers,
    # nor die first when a signal reaches the whole process group (Ctrl-C, systemd,
    # docker stop). It exits when the worker closes its socket.
    for name in ("SIGINT", "SIGTERM", "SIGQUIT", "SIGHUP", "SIGUSR1"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)


def wait_for_exits(server: ForkServer, pids: set[int], timeout: float) -> list[tuple[int, int]]:
    """Collect exits until every pid in ``pids`` exited or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    seen: list[tuple[int, int]] = []
    while True:
        seen += server.exits()
        if pids <= {pid for pid, _ in seen}:
            return seen
        left = deadline - time.monotonic()
        if left <= 0:
            return seen
        select.select([server], [], [], min(left, 0.1))
